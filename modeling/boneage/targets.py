"""Target statistics for z-scored bone age."""


def boneage_mean_std(df_train, df_val, column="boneage"):
    """Mean and standard deviation of bone age, averaged over two splits.

    As in the original: the mean of the two split means, and the mean of the
    two sample standard deviations (pandas, ``ddof=1``). The training CLI uses
    the training split alone instead.

    Args:
        df_train, df_val: DataFrames with a bone-age column in months.
        column: that column's name.

    Returns:
        ``(mean, std)`` as Python floats.

    Example:

    >>> import pandas as pd
    >>> boneage_mean_std(pd.DataFrame({"boneage": [10, 20]}), pd.DataFrame({"boneage": [30, 50]}))
    (27.5, 10.606601717798213)
    """
    for label, frame in (("df_train", df_train), ("df_val", df_val)):
        if column not in frame.columns:
            raise ValueError(f"{label} has no '{column}' column; columns: {list(frame.columns)}.")
    mean = (df_train[column].mean() + df_val[column].mean()) / 2
    std = (df_train[column].std() + df_val[column].std()) / 2
    return float(mean), float(std)
