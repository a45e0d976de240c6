"""MovieLens-100K, read from the unmodified GroupLens files, with the GDMix benchmark split.

Protocol (``../shared/data/README.md``): label ``rating > 3``; user features age, gender, occupation,
zip prefix; movie features genres and release year; a random 80/20 split of the ratings with a fixed,
reported seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from proml_lab.errors import DataNotFoundError

if TYPE_CHECKING:
    import pandas as pd

_FILES = ("u.data", "u.user", "u.item", "u.genre")


@dataclass(frozen=True)
class MovieLens:
    """The three MovieLens tables, typed and ready to join.

    ``ratings``: user_id, item_id, rating, rated_at, label (rating > 3).
    ``users``: user_id, age, gender, occupation, zip_code, zip_prefix (first digit; 'x' if not numeric).
    ``items``: item_id, title, release_date, release_year, genres (list), one 0/1 column per genre.
    """

    path: Path
    ratings: pd.DataFrame = field(repr=False)
    users: pd.DataFrame = field(repr=False)
    items: pd.DataFrame = field(repr=False)

    @property
    def genres(self) -> list[str]:
        return [c.removeprefix("genre_") for c in self.items.columns if c.startswith("genre_")]

    def joined(self) -> pd.DataFrame:
        """Every rating with its user's and its movie's features."""
        return self.ratings.merge(self.users, on="user_id", how="left").merge(
            self.items.drop(columns=["genres"]), on="item_id", how="left"
        )

    def split(self, *, test_fraction: float = 0.2, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The GDMix protocol's random split of the joined ratings: ``(train, test)``.

        Examples
        --------
        >>> train, test = load_movielens().split(seed=0)      # doctest: +SKIP
        >>> len(train), len(test)                              # doctest: +SKIP
        (80000, 20000)
        """
        import numpy as np

        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1); got {test_fraction}")
        data = self.joined()
        order = np.random.default_rng(seed).permutation(len(data))
        n_test = int(round(len(data) * test_fraction))
        test = data.iloc[order[:n_test]].reset_index(drop=True)
        train = data.iloc[order[n_test:]].reset_index(drop=True)
        return train, test


def load_movielens(path: str | Path | None = None) -> MovieLens:
    """Load MovieLens-100K from ``path`` (default: ``PROML_MOVIELENS_DIR``, else ``../shared/data/ml-100k``)."""
    import pandas as pd

    from proml_lab.settings import get_settings

    root = Path(path) if path is not None else get_settings().movielens_dir
    missing = [f for f in _FILES if not (root / f).is_file()]
    if missing:
        raise DataNotFoundError(
            f"MovieLens-100K not found at {root} (missing {', '.join(missing)}). Point "
            "PROML_MOVIELENS_DIR (or the `path` argument) at the folder holding u.data, u.user and u.item.",
            path=str(root),
        )
    ratings = pd.read_csv(
        root / "u.data", sep="\t", names=["user_id", "item_id", "rating", "ts"],
        dtype={"user_id": "int32", "item_id": "int32", "rating": "int8", "ts": "int64"},
    )
    ratings["rated_at"] = pd.to_datetime(ratings.pop("ts"), unit="s", utc=True)
    ratings["label"] = (ratings["rating"] > 3).astype("int8")

    users = pd.read_csv(
        root / "u.user", sep="|", names=["user_id", "age", "gender", "occupation", "zip_code"],
        dtype={"user_id": "int32", "age": "int16", "zip_code": "string"},
    )
    users["gender"] = users["gender"].astype("category")
    users["occupation"] = users["occupation"].astype("category")
    first = users["zip_code"].str[0]
    users["zip_prefix"] = first.where(first.str.isdigit(), "x").astype("category")

    genres = pd.read_csv(root / "u.genre", sep="|", names=["genre", "index"]).dropna()["genre"].tolist()
    cols = ["item_id", "title", "release_date", "video_release_date", "imdb_url"] + [f"genre_{g}" for g in genres]
    items = pd.read_csv(root / "u.item", sep="|", names=cols, encoding="latin-1")
    items = items.drop(columns=["video_release_date", "imdb_url"]).astype({"item_id": "int32"})
    items["release_date"] = pd.to_datetime(items["release_date"], format="%d-%b-%Y", errors="coerce")
    items["release_year"] = items["release_date"].dt.year.astype("Int16")
    genre_cols = [f"genre_{g}" for g in genres]
    items[genre_cols] = items[genre_cols].astype("int8")
    flags = items[genre_cols].to_numpy(bool)
    items["genres"] = [list(pd.Index(genres)[row]) for row in flags]
    return MovieLens(path=root, ratings=ratings, users=users, items=items)
