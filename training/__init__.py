"""Training, evaluation and data for the five systems: shared packages and one folder per system.

Shared: `data` (tables, image decoding, augmentation), `run_directory` (resume, manifest, overwrite
rules), `results` (atomic JSON/CSV), `distribution` (multi-device and multi-process training),
`cli` (preset-aware flags and errors), `console` (quiet backend start-up). Systems: `boneage`
(the others arrive with their issues). Importing this package imports TensorFlow quietly
(see `training.console`).
"""

from training.console import import_backend_quietly

import_backend_quietly()
