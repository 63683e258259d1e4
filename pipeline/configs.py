"""Pipeline constants and defaults (TFX template style: constants only, no logic)."""
import os

PIPELINE_NAME = 'cxr-covid'

# Dotted paths into the installed `components` package (no module_file: no wheel built per run).
PREPROCESSING_FN = 'components.preprocessing.preprocessing_fn'
RUN_FN = 'components.trainer.run_fn'

SCHEMA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'schemas')

# Ingestion.
EVAL_FRACTION_OF_TRAIN = 0.1   # eval split carved out of Train/ (seed layout)
SPLIT_RATIOS = (0.8, 0.1, 0.1)  # train/eval/test for a single root of class folders
MAX_BAD_FRACTION = 0.10
MAX_IMAGE_PIXELS = 100_000_000
SPLIT_SEED = 'cxr-split-v1'

# Transform.
IMAGE_SIZE = 224
IMAGE_CHANNELS = 1            # chest X-rays are grayscale; 3 keeps colour
NORMALIZATION = 'featurewise_center'  # or 'resnet_v2'

# Trainer.
PRESET = 'recommended'        # or 'seed'; hyperparameters in components/hparams.py

# Beam: DirectRunner in multi-processing mode on every core.
BEAM_PIPELINE_ARGS = ('--direct_running_mode=multi_processing', '--direct_num_workers=0')

# `cxr run --demo`: small, fast settings for the bundled demo data (no ImageNet weights offline).
DEMO_IMAGE_SIZE = 64
# Random initialisation: nothing pretrained to freeze, a higher learning rate cut by 5x on
# val_loss plateaus, batches of 16 (steadier than 8 for BatchNormalization from scratch), and
# moving statistics that catch up within a few hundred steps. No early stopping: from random
# weights val_loss can stay flat or rise for several epochs before it falls, and on 18 eval
# images it is noisy; every epoch runs and the best val_loss epoch is kept.
DEMO_HPARAMS = {'weights': 'none', 'freeze_layers': 0, 'epochs': 25, 'batch_size': 16,
                'learning_rate': 1e-3, 'lr_schedule': 'plateau', 'bn_momentum': 0.9,
                'early_stopping_patience': 0}
