"""Installs the `pipeline` and `components` packages and the `cxr` command.

Beam workers and remote runners import the component code from this package, so the pipeline
refers to Transform and Trainer functions by dotted path instead of a module file.
Exact versions of every dependency are in requirements.lock (`make setup` installs them).
"""

import setuptools

setuptools.setup(
  name='cxr-tfx-pipeline',
  version='0.1.0',
  description='TFX pipeline that detects COVID-19 from chest X-rays (ResNet152V2 transfer '
  'learning).',
  python_requires='>=3.10,<3.11',
  packages=setuptools.find_packages(
    include=['pipeline', 'pipeline.*', 'components', 'components.*']
  ),
  install_requires=[
    'tfx==1.16.0',
    'tensorflow==2.16.2',
    'tf-keras==2.16.0',
    'tensorflow-datasets==4.9.10',
    'apache-beam[gcp,dask]>=2.60,<3',  # dask: the ingestion on a dask.distributed cluster
    'dill',  # imported by tfx-bsl, no longer pulled by recent apache-beam
    'pyarrow',
    'pillow',
    'isal',  # ISA-L inflate and CRC-32: PNG validation (components/ingestion/png_check.py)
    'matplotlib',
    'markdown',  # report.html from report.md (pipeline/report_html.py)
    'jinja2',  # the report.html page, autoescaped; the model card's Markdown
    'scipy',  # Wilson score intervals of the gate's figures (components/evaluation)
    'scikit-learn',  # Ledoit-Wolf covariance and AUROC of the out-of-distribution score (ood.py)
    # KubeflowV2DagRunner (cxr compile-kfp); 0.3+ needs protobuf 4.
    'kfp-pipeline-spec>=0.2.2,<0.3',
    'pymysql',  # clear errors for a MySQL metadata store (pipeline/metadata_config.py)
    # DICOM (components/dicom.py); the plugins decode JPEG, JPEG-LS and JPEG 2000 pixel data.
    'pydicom',
    'pylibjpeg',
    'pylibjpeg-libjpeg',
    'pylibjpeg-openjpeg',
  ],
  # Tests and benchmarks only: psutil (memory), ruff (lint).
  extras_require={'test': ['pytest', 'pytest-xdist', 'psutil', 'ruff']},
  entry_points={'console_scripts': ['cxr=pipeline.cli:main']},
)
