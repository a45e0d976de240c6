import pytest

from proml_lab.errors import DataNotFoundError
from proml_lab.worlds import load_movielens


@pytest.fixture(scope="module")
def ml():
    from tests.conftest import MOVIELENS

    return load_movielens(MOVIELENS)


def test_counts(ml):
    assert len(ml.ratings) == 100_000
    assert ml.ratings["user_id"].nunique() == len(ml.users) == 943
    assert ml.ratings["item_id"].nunique() == len(ml.items) == 1_682
    assert len(ml.genres) == 19 and "Film-Noir" in ml.genres


def test_protocol_features_and_label(ml):
    assert set(ml.ratings["label"].unique()) == {0, 1}
    assert (ml.ratings["label"] == (ml.ratings["rating"] > 3)).all()
    assert {"age", "gender", "occupation", "zip_prefix"} <= set(ml.users.columns)
    assert {"release_year", "genres"} <= set(ml.items.columns)
    toy_story = ml.items.set_index("item_id").loc[1]
    assert toy_story["release_year"] == 1995 and set(toy_story["genres"]) == {"Animation", "Children's", "Comedy"}
    # Zip codes such as 'T8H1N' (Canada) have no numeric first digit.
    assert set(ml.users["zip_prefix"].cat.categories) <= set("0123456789x")


def test_split_is_random_80_20_and_reproducible(ml):
    train, test = ml.split(seed=42)
    again_train, _ = ml.split(seed=42)
    other_train, _ = ml.split(seed=43)
    assert (len(train), len(test)) == (80_000, 20_000)
    assert train["rated_at"].equals(again_train["rated_at"])
    assert not train["rated_at"].equals(other_train["rated_at"])
    assert {"age", "occupation", "release_year", "genre_Drama"} <= set(train.columns)
    pairs = set(zip(train.user_id, train.item_id))
    assert not any(p in pairs for p in zip(test.user_id, test.item_id))  # each rating lands once


def test_default_location_comes_from_settings():
    assert len(load_movielens().users) == 943  # PROML_MOVIELENS_DIR, set by conftest


def test_missing_data_names_the_path_and_the_fix(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"missing u.data, u.user, u.item, u.genre.*PROML_MOVIELENS_DIR"):
        load_movielens(tmp_path)
