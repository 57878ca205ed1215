"""The catalogue's pure functions: the bodies every mock answers, computable by any test."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mock_services import catalogue
from mock_services.catalogue import (
    ID_OUT_OF_STOCK,
    ID_WITH_FIVE_REVIEWS,
    ID_WITH_NO_REVIEWS,
    find_id_with_review_count,
    inventory_for,
    product_for,
    reviews_for,
)

SAMPLE = [f"P{n:03d}" for n in range(200)]


class TestShapes:
    """Bodies follow docs/contract.md §1: integer price and stock, ratings 1-5."""

    def test_product(self) -> None:
        body = product_for("P001")
        assert body is not None
        assert set(body) == {"id", "name", "description", "price"}
        assert body["id"] == "P001"
        assert body["name"] == "Awesome Gadget P001"
        assert isinstance(body["price"], int)
        assert body["price"] > 0

    def test_reviews(self) -> None:
        for product_id in SAMPLE:
            for review in reviews_for(product_id):
                assert set(review) == {"productId", "rating", "comment", "author"}
                assert review["productId"] == product_id
                assert 1 <= review["rating"] <= 5

    def test_inventory(self) -> None:
        for product_id in SAMPLE:
            body = inventory_for(product_id)
            assert body is not None
            assert body["productId"] == product_id
            assert isinstance(body["stock"], int)
            assert body["stock"] >= 0


class TestVariety:
    """Bodies vary across ids so that tests can find every case."""

    def test_every_review_count_from_0_to_5_occurs(self) -> None:
        assert {len(reviews_for(i)) for i in SAMPLE} == {0, 1, 2, 3, 4, 5}

    def test_stock_and_price_vary_and_stock_is_sometimes_zero(self) -> None:
        stocks = {(inventory_for(i) or {"stock": -1})["stock"] for i in SAMPLE}
        prices = {(product_for(i) or {"price": -1})["price"] for i in SAMPLE}
        assert 0 in stocks
        assert len(stocks) > 10
        assert len(prices) > 100


ROOT = Path(__file__).resolve().parents[2]


class TestDeterminism:
    """Same id, same body, in every process (a stable hash, not `hash()`)."""

    @pytest.mark.parametrize("hash_seed", ["1", "2"])
    def test_same_id_same_bodies_in_another_process(self, hash_seed: str) -> None:
        """Another interpreter, with another str-hash seed, derives the very same bodies."""
        ids = ["abc_1", "P001", "Zed_9", "x"]
        code = (
            "import json, sys\n"
            "from mock_services.catalogue import inventory_for, product_for, reviews_for\n"
            "print(json.dumps([[product_for(i), reviews_for(i), inventory_for(i)]"
            " for i in sys.argv[1:]]))"
        )
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-c", code, *ids],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        here = [[product_for(i), reviews_for(i), inventory_for(i)] for i in ids]
        assert json.loads(done.stdout) == here

    def test_known_values_are_pinned(self) -> None:
        # Pinned so that a change to the derivation is a deliberate, visible change.
        assert product_for("P001") == {
            "id": "P001",
            "name": "Awesome Gadget P001",
            "description": "A compact tool for everyday use.",
            "price": 55509,
        }
        assert inventory_for("P001") == {"productId": "P001", "stock": 39}
        assert len(reviews_for("P001")) == 3


class TestMissingAndInvalidIds:
    """Ids starting with `missing` do not exist; invalid ids are a programming error here."""

    def test_missing_ids(self) -> None:
        assert product_for("missing-42") is None
        assert inventory_for("missing") is None
        assert reviews_for("missing_x") == []

    @pytest.mark.parametrize("bad", ["", "a/b", "x" * 65, "P 1", "é"])
    def test_invalid_ids_raise(self, bad: str) -> None:
        assert not catalogue.is_valid_id(bad)
        with pytest.raises(ValueError, match="invalid product id"):
            product_for(bad)

    def test_id_pattern(self) -> None:
        assert catalogue.ID_PATTERN.pattern == re.compile(r"^[A-Za-z0-9_-]{1,64}$").pattern
        assert catalogue.is_valid_id("a" * 64)


class TestFinders:
    """Helpers that name ids with a given shape, for tests of the BFF."""

    def test_constants_have_the_advertised_shape(self) -> None:
        assert reviews_for(ID_WITH_NO_REVIEWS) == []
        assert len(reviews_for(ID_WITH_FIVE_REVIEWS)) == 5
        assert (inventory_for(ID_OUT_OF_STOCK) or {"stock": -1})["stock"] == 0

    @pytest.mark.parametrize("count", range(6))
    def test_find_id_with_review_count(self, count: int) -> None:
        found = find_id_with_review_count(count)
        assert re.fullmatch(r"P\d{3}", found)
        assert len(reviews_for(found)) == count

    def test_impossible_count_raises(self) -> None:
        with pytest.raises(LookupError):
            find_id_with_review_count(6)
