"""Test helper, run as a script: one worker of a training cluster. Reads the FnArgs fields from
the JSON file named by its argument and calls trainer.run_fn under the TF_CONFIG it was started
with (tests/test_multiworker_training.py), logging to stderr."""

import json
import logging
import sys

from tfx import v1 as tfx

from components import trainer

if __name__ == '__main__':
  logging.basicConfig(
    level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s', force=True
  )
  with open(sys.argv[1], encoding='utf-8') as f:
    trainer.run_fn(tfx.components.FnArgs(**json.load(f)))
