// Vite turns CSS imports into style tags.
declare module "*.css";
