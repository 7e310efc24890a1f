# The TypeScript image: API, TypeScript worker and migrations (one image, three commands).
# TypeScript runs through tsx, as in the checkout; no build step.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
# Dev dependencies include vite for the web UI build below; they are pruned afterwards.
RUN npm ci --no-audit --no-fund
COPY . .
RUN if [ -f web/package.json ]; then npm run --prefix web build; \
    elif [ -f web/vite.config.ts ]; then npx vite build web; fi \
 && npm prune --omit=dev --no-audit --no-fund
# The shared volume is mounted here; a fresh named volume takes this folder's owner.
RUN mkdir -p /var/lib/medloop && chown node:node /var/lib/medloop
USER node
EXPOSE 8080
CMD ["node", "--import", "tsx", "stack/apiServer.ts"]
