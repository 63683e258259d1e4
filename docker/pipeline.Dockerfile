# The image every Kubeflow Pipelines v2 / Vertex AI Pipelines step runs in: TFX and this project
# with the exact versions of requirements.lock, the project in /pipeline (CONTAINER_PROJECT_DIR of
# pipeline/kubeflow_v2_runner.py: the schema is read from /pipeline/schemas/). From the repository
# root (docs/scaling_out.md):
#   docker build -f docker/pipeline.Dockerfile -t cxr-tfx-pipeline:0.1.0 .
#
# Base: python:3.10-slim, not TFX's image (gcr.io/tfx-oss-public/tfx:1.16.0). TFX's image comes
# with TFX's own pins of Beam, TensorFlow and their dependencies and with packages the lock does not
# know; installing the lock over it would replace some and leave the others, so the steps would not
# run the versions the tests run. Here the environment is the lock and nothing else (`pip check`
# verifies it is consistent). Python 3.10: the lock's Python (TFX 1.16 supports 3.9-3.10).
# CPU only: GPU training on Vertex needs the CUDA libraries, which the lock does not hold.
FROM python:3.10-slim-bookworm

# TFX 1.16's Transform layers need Keras 2 behind tf.keras (components/__init__.py sets it too).
ENV TF_USE_LEGACY_KERAS=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /pipeline

# The locked dependencies first, in a layer that changes only with the lock. pip and setuptools
# as scripts/bootstrap.sh pins them; g++ builds pyfarmhash (no wheel for Linux) and is removed.
COPY requirements.lock .
RUN apt-get update \
  && apt-get install -y --no-install-recommends g++ \
  && pip install pip==24.2 setuptools==75.8.0 \
  && pip install -r requirements.lock \
  && pip check \
  && apt-get purge -y --auto-remove g++ \
  && rm -rf /var/lib/apt/lists/*

# The project (what .dockerignore lets in: setup.py, pipeline/, components/, schemas/).
COPY . .
RUN pip install --no-deps --no-build-isolation .
