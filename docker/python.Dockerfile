# The gpu worker image: the ml/ package (PyTorch + MONAI) on CUDA.
FROM python:3.11-slim-bookworm
WORKDIR /app
# The CUDA build of torch, pinned like ml/pyproject.toml pins the CPU build.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
RUN pip install --no-cache-dir --index-url "$TORCH_INDEX_URL" torch==2.13.0
COPY ml/ ml/
RUN pip install --no-cache-dir ./ml
# Same uid as the node image's user, so both write the shared blob volume.
RUN useradd --create-home --uid 1000 medloop && mkdir -p /var/lib/medloop && chown medloop /var/lib/medloop
USER medloop
CMD ["medloop-ml", "worker", "--address", "temporal:7233", "--task-queue", "gpu"]
