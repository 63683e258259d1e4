"""TFDS builder `cxr_folder` over chest X-ray class folders; importing this package registers it."""

from components.tfds_cxr.cxr_folder import CxrFolder
from components.tfds_cxr.cxr_folder import CxrFolderConfig
