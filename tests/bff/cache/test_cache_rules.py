"""What a service lets a shared cache do with a response: parsed once into deadlines."""

from __future__ import annotations

from email.utils import formatdate

import pytest
from cache_support import headers, lines

from bff.cache.rules import MAX_DELTA_S, Freshness, freshness, parse_cache_control, vary_names

NOW = 1_800_000_000.25
DAY = 86_400.0


def fresh(
    cc: str | None, *, identified: bool = False, max_ttl_s: float = DAY, **more: str
) -> Freshness | None:
    fields = dict(more)
    if cc is not None:
        fields["Cache_Control"] = cc
    return freshness(headers(**fields), now=NOW, identified=identified, max_ttl_s=max_ttl_s)


class TestWhatIsStored:
    """Only an explicit lifetime is stored; never no-store; no Cache-Control, no storing."""

    @pytest.mark.parametrize(
        "cc",
        [
            None,
            "",
            "no-store",
            "no-store, max-age=60",
            "public",
            "stale-if-error=600",
            "no-transform",
        ],
    )
    def test_not_stored(self, cc: str | None) -> None:
        assert fresh(cc, ETag='"x"') is None

    def test_max_age(self) -> None:
        meta = fresh("max-age=60, stale-while-revalidate=30, stale-if-error=600")
        assert meta is not None
        assert meta.dated_at == NOW
        assert meta.fresh_until == NOW + 60
        assert meta.swr_until == NOW + 90
        assert meta.sie_until == NOW + 660
        assert meta.shared
        assert meta.etag is None

    def test_s_maxage_wins_and_forbids_stale(self) -> None:
        """s-maxage carries proxy-revalidate for a shared cache (RFC 9111 §5.2.2.10)."""
        meta = fresh("max-age=600, s-maxage=10, stale-while-revalidate=30, stale-if-error=60")
        assert meta is not None
        assert meta.fresh_until == NOW + 10
        assert meta.swr_until == meta.sie_until == NOW + 10

    @pytest.mark.parametrize("cc", ["max-age=60, must-revalidate", "max-age=60, proxy-revalidate"])
    def test_revalidate_directives_forbid_stale(self, cc: str) -> None:
        meta = fresh(cc + ", stale-while-revalidate=30, stale-if-error=60")
        assert meta is not None
        assert meta.swr_until == meta.sie_until == meta.fresh_until == NOW + 60

    def test_no_cache_is_kept_only_to_revalidate(self) -> None:
        meta = fresh("no-cache, max-age=60, stale-if-error=600", ETag='"abc"')
        assert meta is not None
        assert meta.fresh_until == meta.swr_until == meta.sie_until == NOW
        assert meta.etag == '"abc"'
        assert fresh("no-cache, max-age=60") is None  # nothing to revalidate with
        assert fresh('no-cache="Set-Cookie", max-age=60', ETag='"a"') is not None

    def test_clamped_to_max_ttl(self) -> None:
        meta = fresh("max-age=999999999, stale-if-error=999999999", max_ttl_s=100)
        assert meta is not None
        assert meta.fresh_until == NOW + 100
        assert meta.sie_until == NOW + 200

    def test_huge_delta_is_two_to_the_31(self) -> None:
        meta = fresh("max-age=99999999999999999999", max_ttl_s=float("inf"))
        assert meta is not None
        assert meta.fresh_until == NOW + MAX_DELTA_S

    def test_several_lines_are_one_list(self) -> None:
        h = lines(("Cache-Control", "max-age=60"), ("Cache-Control", "stale-if-error=5"))
        meta = freshness(h, now=NOW, identified=False, max_ttl_s=DAY)
        assert meta is not None
        assert meta.sie_until == NOW + 65
        h = lines(("Cache-Control", "max-age=60"), ("Cache-Control", "no-store"))
        assert freshness(h, now=NOW, identified=False, max_ttl_s=DAY) is None


class TestGarbage:
    """A garbage or contradictory Cache-Control is not stored, never an error."""

    @pytest.mark.parametrize(
        "cc",
        [
            "max-age=abc",
            "max-age=-1",
            "max-age=1.5",
            "max-age=",
            "max-age",
            "max-age=²",
            "max-age=60, max-age=10",
            "public, private, max-age=60",
            "max-age=60 junk",
            "max-age=60;stale-if-error=5",
            'max-age="6',
            "m@x-age=60",
            "max-age=60, stale-if-error=x",
            "\x00max-age=60",
            "max-age=٣",
        ],
    )
    def test_not_stored(self, cc: str) -> None:
        assert fresh(cc) is None

    def test_repeated_same_value_is_fine(self) -> None:
        assert fresh("max-age=60, max-age=60") is not None

    def test_unknown_directives_are_ignored(self) -> None:
        meta = fresh("max-age=60, immutable, x-ext=1, ,")
        assert meta is not None
        assert meta.fresh_until == NOW + 60

    def test_quoted_value_and_case(self) -> None:
        assert parse_cache_control('MAX-AGE="60", Public') == {"max-age": "60", "public": None}


class TestIdentity:
    """`private` never reaches another identity; an identified request is kept for others
    only with public, s-maxage or must-revalidate (RFC 9111 §3.5)."""

    def test_private_is_per_identity(self) -> None:
        meta = fresh("private, max-age=60", identified=True)
        assert meta is not None
        assert not meta.shared
        assert fresh("private, max-age=60", identified=False) is None
        assert fresh('private="X-Foo", max-age=60', identified=False) is None

    @pytest.mark.parametrize(
        ("cc", "shared"),
        [
            ("max-age=60", False),
            ("public, max-age=60", True),
            ("s-maxage=60", True),
            ("max-age=60, must-revalidate", True),
        ],
    )
    def test_identified_request(self, cc: str, shared: bool) -> None:
        meta = fresh(cc, identified=True)
        assert meta is not None
        assert meta.shared is shared

    def test_anonymous_request_is_shared(self) -> None:
        meta = fresh("max-age=60")
        assert meta is not None
        assert meta.shared


class TestAge:
    """The age the copy arrived with is subtracted from its freshness."""

    def test_age_header(self) -> None:
        meta = fresh("max-age=60, stale-if-error=100", Age="20")
        assert meta is not None
        assert meta.dated_at == NOW - 20
        assert meta.fresh_until == NOW + 40
        assert meta.sie_until == NOW + 140

    def test_date_at_one_second_resolution(self) -> None:
        same_second = fresh("max-age=60", Date=formatdate(NOW, usegmt=True))
        assert same_second is not None
        assert same_second.fresh_until == NOW + 60
        older = fresh("max-age=60", Date=formatdate(NOW - 10, usegmt=True))
        assert older is not None
        assert older.fresh_until == pytest.approx(NOW + 50, abs=1)

    def test_larger_of_age_and_date(self) -> None:
        meta = fresh("max-age=60", Age="30", Date=formatdate(NOW - 10, usegmt=True))
        assert meta is not None
        assert meta.fresh_until == NOW + 30

    def test_date_in_the_future_is_no_age(self) -> None:
        meta = fresh("max-age=60", Date=formatdate(NOW + 3600, usegmt=True))
        assert meta is not None
        assert meta.fresh_until == NOW + 60

    @pytest.mark.parametrize("bad", [{"Age": "x"}, {"Age": "-5"}, {"Date": "yesterday"}])
    def test_garbage_is_no_age(self, bad: dict[str, str]) -> None:
        meta = fresh("max-age=60", **bad)
        assert meta is not None
        assert meta.fresh_until == NOW + 60

    def test_already_stale_without_windows_is_not_stored(self) -> None:
        assert fresh("max-age=10", Age="20") is None
        kept = fresh("max-age=10, stale-if-error=60", Age="20")
        assert kept is not None
        assert kept.sie_until == NOW + 50


class TestValidatorsAndVary:
    """A strong ETag is kept as sent; Vary names are kept sorted; Vary: * is not stored."""

    @pytest.mark.parametrize(
        ("etag", "kept"),
        [
            ('"abc"', '"abc"'),
            ('W/"abc"', None),
            ("abc", None),
            ('"a"b"', None),
            ('"' + "x" * 300 + '"', None),
        ],
    )
    def test_etag(self, etag: str, kept: str | None) -> None:
        meta = fresh("max-age=60", ETag=etag)
        assert meta is not None
        assert meta.etag == kept

    def test_vary(self) -> None:
        assert vary_names("Accept-Language, authorization") == ("accept-language", "authorization")
        assert vary_names(None) == ()
        assert vary_names("*") is None
        assert vary_names("Accept, *") is None
        assert vary_names("bad header") is None
        meta = fresh("max-age=60", Vary="Accept-Language")
        assert meta is not None
        assert meta.vary == ("accept-language",)
        assert fresh("max-age=60", Vary="*") is None
