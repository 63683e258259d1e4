# The Beam SDK worker image: runs this project's Beam steps (ingestion, StatisticsGen, Transform,
# Evaluator) on Flink or Spark with --environment_type=DOCKER --environment_config=IMAGE, and on
# Dataflow with --sdk_container_image=IMAGE. From the repository root (docs/scaling_out.md):
#   docker build -f docker/beam_worker.Dockerfile -t cxr-beam-sdk:0.1.0 .
#
# Base: python:3.10-slim plus the SDK launcher of Beam's image of the locked apache-beam version
# (Beam's documented way to use another base image), not `FROM apache/beam_python3.10_sdk`: Beam's
# image comes with its own set of packages at Beam's versions (ML libraries among them); installing
# the lock over it would replace some and leave the ones the lock does not know. Here the
# environment is the lock and nothing else, as in docker/pipeline.Dockerfile. The launcher and the
# apache-beam package must be of one version, and the image's Python is the lock's (3.10).
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

COPY --from=apache/beam_python3.10_sdk:2.74.0 /opt/apache/beam /opt/apache/beam

# The project (what .dockerignore lets in: setup.py, pipeline/, components/, schemas/).
COPY . .
RUN pip install --no-deps --no-build-isolation .

ENTRYPOINT ["/opt/apache/beam/boot"]
