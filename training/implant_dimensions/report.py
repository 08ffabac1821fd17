"""The report of an implant-dimension search: ``python -m training.implant_dimensions.report --tuning_dir DIR``
(console script ``report-implant-tuning``).

Prints every trial (status, ``avg_mae``, hyper-parameters, the other validation and test metrics),
writes them to ``trials.csv`` and plots ``avg_mae`` against each searched hyper-parameter
(``plots/objective_vs_<name>.png``), in the search folder or ``--output_dir``. ``DIR`` is the
search's ``--tuning_dir`` (the chief's in the distributed mode) or its ``implant_dimensions_<tuner>``
folder. This is `training.tuning.report`; it replaces the original's missing ``analyze_tuning_results.py``.
"""

import argparse

from training.cli import exit_on_user_errors
from training.implant_dimensions.tuning import DEFAULT_TUNING_DIR
from training.tuning import report


def main(argv=None):
    """Console entry point; returns `training.tuning.report`'s dict."""
    parser = argparse.ArgumentParser(prog="report-implant-tuning", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tuning_dir", default=DEFAULT_TUNING_DIR)
    parser.add_argument("--output_dir", help="where trials.csv and plots/ go (default: the search folder)")
    args = parser.parse_args(argv)
    with exit_on_user_errors():
        return report(args.tuning_dir, args.output_dir)


if __name__ == "__main__":
    main()
