"""`python -m mock_services`: flags, printed addresses, one log line per request, clean stop."""

from __future__ import annotations

import signal

import aiohttp
import pytest
from process_support import TIMEOUT_S, announced_mocks, running, stop

from mock_services import FaultSettings
from mock_services.catalogue import product_for
from mock_services.cli import parse_args
from mock_services.presets import PRESETS


class TestArguments:
    """Flags and their defaults (docs/contract.md §3)."""

    def test_defaults(self) -> None:
        args = parse_args([])
        assert (args.host, args.product_port, args.reviews_port, args.inventory_port) == (
            "127.0.0.1",
            8081,
            8082,
            8083,
        )
        assert args.latency_scale == 1.0

    def test_flags(self) -> None:
        args = parse_args(["--host", "0.0.0.0", "--product-port", "0", "--latency-scale", "0"])
        assert (args.host, args.product_port, args.latency_scale) == ("0.0.0.0", 0, 0.0)

    @pytest.mark.parametrize("argv", [["--latency-scale", "-1"], ["--product-port", "70000"]])
    def test_invalid_values_exit_2(self, argv: list[str]) -> None:
        with pytest.raises(SystemExit) as exc:
            parse_args(argv)
        assert exc.value.code == 2

    def test_help(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as exc:
            parse_args(["--help"])
        assert exc.value.code == 0
        assert "--latency-scale" in capsys.readouterr().out

    def test_help_names_the_fault_api_and_the_presets(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with pytest.raises(SystemExit):
            parse_args(["--help"])
        out = capsys.readouterr().out
        for text in ("PUT    /__faults", "DELETE /__faults", "/__stats", "?preset=NAME"):
            assert text in out
        for name in PRESETS:
            assert f"  {name} " in out
        for field in FaultSettings.__struct_fields__:
            assert field in out

    def test_lab_port_and_preset(self) -> None:
        assert parse_args([]).lab_port == 8089
        assert parse_args([]).preset is None
        args = parse_args(["--lab-port", "0", "--preset", "brownout"])
        assert (args.lab_port, args.preset) == (0, PRESETS["brownout"])

    def test_unknown_preset_exits_2_naming_the_presets(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with pytest.raises(SystemExit) as exc:
            parse_args(["--preset", "meltdown"])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert "unknown preset 'meltdown'" in err
        assert "slow-reviews" in err


@pytest.mark.slow
class TestProcess:
    """The real process: addresses on stdout, a working service, exit 0 on a signal."""

    @pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
    async def test_serves_and_stops_cleanly(self, sig: signal.Signals) -> None:
        args = ["-m", "mock_services", "--product-port=0", "--reviews-port=0"]
        args += ["--inventory-port=0", "--lab-port=0", "--latency-scale=0"]
        args += ["--preset=inventory-down"]
        names = ("product", "reviews", "inventory", "lab")
        async with running(args) as (proc, lines):
            urls = await announced_mocks(lines, names)
            assert list(urls) == list(names)
            assert all(not url.rstrip("/").endswith(":0") for url in urls.values())

            timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                async with session.get(f"{urls['product']}/products/P001") as resp:
                    assert resp.status == 200
                    assert await resp.json() == product_for("P001")
                async with session.get(f"{urls['inventory']}/inventory/P001") as resp:
                    assert resp.status == 503, "--preset=inventory-down is in force"
                async with session.get(urls["lab"]) as resp:
                    assert resp.status == 200
                    assert "Fault lab" in await resp.text()

            returncode = await stop(proc, sig)
        output = "\n".join(lines.seen)
        assert returncode == 0, output
        assert "Traceback" not in output
        assert "product GET /products/P001 200" in output
