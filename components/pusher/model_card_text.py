"""The model card's fixed statements: name, overview, references, intended users and uses,
limitations (docs/domain.md, "What it cannot fix") and ethical considerations.

components.pusher.model_card adds what each run's data and figures say to them.
"""

NAME = 'COVID-19 chest X-ray classifier'
OVERVIEW = (
  'Classifies a chest X-ray as COVID, NORMAL or VIRAL PNEUMONIA. Research use only: not a '
  'medical device, not for diagnosis.'
)
REFERENCES = (
  'https://arxiv.org/abs/1810.03993',  # Mitchell et al. 2019, Model Cards for Model Reporting
  'https://arxiv.org/abs/1603.05027',  # He et al. 2016, ResNetV2 (identity mappings)
  'https://arxiv.org/abs/1706.04599',  # Guo et al. 2017, temperature scaling
  'https://www.kaggle.com/datasets/tawsifurrahman/covid19-radiography-database',
  'https://doi.org/10.1038/s42256-021-00338-7',  # DeGrave et al. 2021, shortcuts over signal
  'https://doi.org/10.1038/s42256-021-00307-0',  # Roberts et al. 2021, 62 models reviewed
)
# docs/domain.md, "What it cannot fix", and what the model does with other images.
LIMITATIONS = (
  'Source and age confounding: in the COVID-19 Radiography Database all viral-pneumonia images '
  'and the original normals are paediatric (Guangzhou, ages 1-5) while the COVID images are '
  'adult and multi-source, so a model can separate the classes by age or hospital alone '
  '(DeGrave et al., Nat Mach Intell 2021: "AI for radiographic COVID-19 detection selects '
  'shortcuts over signal").',
  'Near-duplicates: re-encoded copies (e.g. RSNA images derived from NIH ChestX-ray14) do not '
  'share a hash; ingestion removes exact duplicates only, so a test image may have a near-copy '
  'in the training split.',
  'External validity: the test images come from the same sources as the training images. '
  'Validate on data from another hospital before drawing conclusions.',
  'Published COVID-19 chest X-ray classifiers report 93-99% accuracy, yet a review of 62 such '
  'studies found none of potential clinical use (Roberts et al., Nat Mach Intell 2021).',
  'The model knows three classes only. It abstains on images far from its training data (noise, '
  'text, photos, CT or MR slices: out-of-distribution score above a threshold set on the eval '
  'split), but an X-ray with another finding, a lateral view or a film from another hospital can '
  'look in-distribution and still get one of the three classes.',
)
USERS = (
  'Machine-learning researchers and engineers studying chest X-ray classification and its '
  'pitfalls (confounded sources, small test sets, calibration, model gating).',
)
USE_CASES = (
  (
    'intended',
    'Research: studying COVID-19 / normal / viral pneumonia classification of chest '
    'X-rays, and the pipeline that ingests, trains, gates and serves it.',
  ),
  (
    'out_of_scope',
    'Diagnosis, screening, triage or any clinical decision about a patient: the '
    'model is not a medical device and has not been clinically validated.',
  ),
  (
    'out_of_scope',
    'Images from other hospitals, devices or populations without validating the '
    'model on them first (see the limitations).',
  ),
)
ETHICAL_CONSIDERATIONS = (
  (
    'Use for diagnosis: a missed COVID case or a false alarm harms a patient.',
    'Research use only, stated in this card, the README and docs/domain.md. No clinical '
    'validation has been done.',
  ),
  (
    'Shortcut learning: the model may classify by hospital, age, text markers or patient '
    'position instead of the lungs.',
    'This card gives the figures per source, view position, sex, age band and manufacturer; '
    'ingestion refuses a test split whose classes are confounded with their sources (unless '
    "--allow-confounded-sources), keeps exact duplicates out of training and a patient's images "
    "(DICOM PatientID, the metadata CSV's patient_id or --group-regex) in one split.",
  ),
  (
    'Missed COVID cases (false negatives).',
    'The gate judges COVID recall (by default the lower end of its 95% interval); the served '
    'covid_positive uses a threshold chosen for a target sensitivity on the eval split.',
  ),
)
