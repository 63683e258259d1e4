"""The pipeline's own constants: name, function paths, schema, Beam engines' presets, demo recipe.

The settings of each step, and their defaults, belong to the component that reads them:
components.ingestion.options.IngestOptions, components.image_spec.ImageSpec,
components.hparams.HParams (and PRESETS).
"""

import os
from typing import Dict, Tuple

PIPELINE_NAME = 'cxr-covid'

# Dotted paths into the installed `components` package (no module_file: no wheel built per run).
PREPROCESSING_FN = 'components.preprocessing.preprocessing_fn'
RUN_FN = 'components.trainer.run_fn'

_REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA_DIR = os.path.join(_REPO_DIR, 'schemas')
# setup.py of this project: remote Beam workers install it to import `components`.
PACKAGE_SETUP_FILE = os.path.join(_REPO_DIR, 'setup.py')


def direct_beam_args(project_dir: str = _REPO_DIR) -> Tuple[str, ...]:
  """Beam on this machine: the DirectRunner's own engine (FnApiRunner) in multi-processing mode on
  every core. Named, because Beam 2.74's DirectRunner first hands a pipeline to Prism: it packs
  this project into an sdist twice and downloads the Prism binary, which offline fails after 4 s
  per step and online runs the step on another engine than these options describe.
  --setup_file (this project's, in `project_dir`): without a dependency flag, every TFX Beam
  executor first packs TFX itself into an sdist for remote workers (a copy of its install and
  `setup.py sdist`, 2-5 s per step on 2 cores); the FnApiRunner installs nothing."""
  return (
    '--runner=FnApiRunner',
    '--direct_running_mode=multi_processing',
    '--direct_num_workers=0',
    f'--setup_file={os.path.join(project_dir, "setup.py")}',
  )


BEAM_PIPELINE_ARGS = direct_beam_args()

DASK_RUNNER = 'apache_beam.runners.dask.dask_runner.DaskRunner'
# `--beam-engine`: each engine's preset, which the --beam-arg flags complete (pipeline.beam_args).
BEAM_ENGINES: Dict[str, Tuple[str, ...]] = {
  'direct': BEAM_PIPELINE_ARGS,
  'dataflow': (
    '--runner=DataflowRunner',
    f'--setup_file={PACKAGE_SETUP_FILE}',
    # ResNet152V2 is loaded by every Evaluator worker: 15 GB machines, not 3.75 GB.
    '--machine_type=n1-standard-4',
  ),
  'flink': ('--runner=FlinkRunner',),
  'spark': ('--runner=SparkRunner',),
  'dask': (f'--runner={DASK_RUNNER}',),  # the ingestion only (pipeline.beam_args.by_step)
}

# `cxr run --demo`: small, fast settings for the bundled demo data (no ImageNet weights offline).
# 32 px: an epoch takes ~30 s on 2 idle cores (64 px: ~40 s, and from scratch it learns more
# slowly: 0.67 training accuracy after 12 epochs).
DEMO_IMAGE_SIZE = 32
# Random initialisation: nothing pretrained to freeze, batches of 16 (steadier than 8 for
# BatchNormalization from scratch), moving statistics that catch up within a few hundred steps,
# and a learning rate that decays along a cosine over a fixed number of epochs. Not on val_loss
# plateaus: from random weights the early val_loss (18 eval images, BatchNormalization statistics
# still far off) is noise, and cutting the rate on it left some seeds under-trained. 18 epochs: with
# 12, two seeds of five stopped near 0.87 training accuracy and failed the gate on COVID recall.
# Every epoch runs and the best val_loss epoch is kept.
DEMO_HPARAMS = {
  'weights': 'none',
  'freeze_layers': 0,
  'epochs': 18,
  'batch_size': 16,
  'learning_rate': 1e-3,
  'lr_schedule': 'cosine',
  'bn_momentum': 0.9,
  'early_stopping_patience': 0,
}
