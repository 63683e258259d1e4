"""Feature keys of the raw tf.Example written by ingestion and of the Transform output."""

# Raw tf.Example (schemas/schema.pbtxt).
IMAGE_KEY = 'image'  # encoded image bytes (PNG or JPEG; other formats transcoded to PNG)
LABEL_KEY = 'label'  # int64 class index, components.labels.CLASS_NAMES order
LABEL_NAME_KEY = 'label_name'  # bytes, CLASS_NAMES[label]
PATH_KEY = 'path'  # bytes, path relative to the dataset root
SHA256_KEY = 'sha256'  # bytes, hex digest of the file's content
SOURCE_KEY = 'source'  # bytes, top folder (e.g. 'Train') or span ('span-2'), for slicing
HEIGHT_KEY = 'height'  # int64
WIDTH_KEY = 'width'  # int64
CHANNELS_KEY = 'channels'  # int64
FORMAT_KEY = 'format'  # bytes, 'PNG' or 'JPEG'
# The stored pixels (image_check.PixelSummary), compared between spans by the drift check.
BIT_DEPTH_KEY = 'bit_depth'  # int64: 16, 8 or 1
INTENSITY_MEAN_KEY = 'intensity_mean'  # float: mean of the pixels scaled to [0, 1]
INTENSITY_STD_KEY = 'intensity_std'  # float: their standard deviation
# Optional (components/ingestion/subjects.py): from DICOM elements or the metadata CSV.
PATIENT_HASH_KEY = 'patient_hash'  # bytes, salted hash of the patient id; absent when unknown
VIEW_POSITION_KEY = 'view_position'  # bytes, e.g. 'PA', 'AP', 'LL'; 'unknown' when missing
SEX_KEY = 'sex'  # bytes, 'M', 'F', 'O' or 'unknown'
AGE_BAND_KEY = 'age_band'  # bytes, '0-9', '10-19', ..., '90+' or 'unknown'
MANUFACTURER_KEY = 'manufacturer'  # bytes, the equipment's manufacturer or 'unknown'
SUBGROUP_KEYS = (VIEW_POSITION_KEY, SEX_KEY, AGE_BAND_KEY, MANUFACTURER_KEY)  # reported slices

# Transform output.
PIXELS_XF = 'pixels_xf'  # bytes: PNG of the resized uint8 image, image_size x image_size x channels
PIXEL_MEAN_XF = 'pixel_mean_xf'  # float32 [channels]: train-split mean of pixels/255, every channel
LABEL_XF = 'label_xf'  # int64, the label unchanged
