/** A page renders into `root` from the route's captures; it may return a cleanup function. */
export type Page = (root: HTMLElement, params: string[]) => Promise<(() => void) | void>;
