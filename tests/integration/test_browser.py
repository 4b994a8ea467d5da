"""The MLflow UI in a real browser: headless Chromium (Debian package) opens the platform's
HTTPS URL, trusting only the generated CA (imported into the browser's NSS store), sends
basic-auth credentials, and must find the experiment by name once the React app has rendered.
The screenshot and DOM are kept in ``test-artifacts/`` (gitignored).

No skip: without Chromium or certutil the test fails and says which package to install."""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from localplatform import LocalPlatform

from .browser import Browser, BrowserError, launch, make_nss_home
from .conftest import Edge, artifacts_dir, module_platform

pytestmark = pytest.mark.timeout(600)

EXPERIMENT = "recommendation-team/product-ranking/ui-check"
HIDDEN = "fraud-team/transaction-scoring/ui-check"
RUN_NAME = "sgd-ui-check-run"
VIEWER = ("ui-viewer", "ui-viewer-password-1")


@pytest.fixture(scope="module")
def platform() -> Iterator[LocalPlatform]:
    yield from module_platform("browser", access_mode="proxied")


@pytest.fixture(scope="module")
def edge(platform: LocalPlatform) -> Edge:
    return Edge.of(platform)


@pytest.fixture(scope="module")
def experiments(edge: Edge) -> dict[str, str]:
    """Two experiments (one with a named run); a viewer granted READ on the first only."""
    ids = {}
    for name in (EXPERIMENT, HIDDEN):
        # The kind tag is what the UI stores when a user picks "Model training" for an experiment;
        # without it MLflow 3's UI opens a new experiment on its GenAI (traces) overview.
        kind = {"key": "mlflow.experimentKind", "value": "custom_model_development"}
        response = edge.as_admin("POST", "/api/2.0/mlflow/experiments/create", json={"name": name, "tags": [kind]})
        assert response.status_code == 200, response.text
        ids[name] = response.json()["experiment_id"]
    run = edge.as_admin(
        "POST", "/api/2.0/mlflow/runs/create", json={"experiment_id": ids[EXPERIMENT], "run_name": RUN_NAME}
    )
    assert run.status_code == 200, run.text
    user = edge.as_admin("POST", "/api/2.0/mlflow/users/create", json={"username": VIEWER[0], "password": VIEWER[1]})
    assert user.status_code == 200, user.text
    grant = edge.as_admin(
        "POST",
        "/api/3.0/mlflow/users/permissions/grant",
        json={
            "username": VIEWER[0],
            "resource_type": "experiment",
            "resource_id": ids[EXPERIMENT],
            "permission": "READ",
        },
    )
    assert grant.status_code == 200, grant.text
    return ids


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def _save(name: str, png: bytes, dom: str) -> Path:
    out = artifacts_dir() / f"{name}.png"
    out.write_bytes(png)
    (artifacts_dir() / f"{name}.html").write_text(dom)
    return out


def _experiment_links(browser: Browser) -> dict[str, str]:
    """Link text -> href of every link to an experiment page (what a user would click)."""
    links = browser.evaluate(
        "Array.from(document.querySelectorAll('a[href*=\"experiments/\"]'))"
        ".map(a => [a.textContent.trim(), a.getAttribute('href')])"
    )
    return {text: href for text, href in links}


def test_the_ui_shows_the_experiment_over_verified_tls_with_basic_auth(
    edge: Edge, experiments: dict[str, str], tmp_path: Path
) -> None:
    home = make_nss_home(tmp_path / "home", edge.ca_cert)
    with launch(home, log_path=artifacts_dir() / "chromium-admin.log") as browser:
        browser.open_page()
        # Without credentials the server challenges and the page does not load.
        unauthenticated = browser.navigate(edge.url + "/#/experiments")
        assert unauthenticated.error_text == "net::ERR_INVALID_AUTH_CREDENTIALS", unauthenticated
        browser.set_basic_auth(*edge.admin)
        page = browser.navigate(edge.url + "/#/experiments")
        assert page.error_text is None, page
        assert page.status == 200
        assert page.security_state == "secure", "Chromium itself must consider the connection secure"
        assert page.issuer == "mlflow-platform local CA"
        browser.wait_for_text(EXPERIMENT, timeout_s=90)
        links = _experiment_links(browser)
        assert links.get(EXPERIMENT, "").endswith(f"experiments/{experiments[EXPERIMENT]}"), links
        assert HIDDEN in links, "the admin sees every experiment"
        png, dom = browser.screenshot(), browser.dom()
        shot = _save("ui-experiments-admin", png, dom)
        # Open it by clicking its name: the experiment page lists its run, so the UI's own API
        # calls (ajax-api, with the same credentials) work through the proxy too.
        href = browser.click_link(EXPERIMENT)
        assert href.endswith(f"experiments/{experiments[EXPERIMENT]}")
        browser.wait_for(f"location.hash.includes('experiments/{experiments[EXPERIMENT]}')", timeout_s=30)
        # MLflow 3 opens an experiment on its overview; its training runs are one route further.
        browser.navigate(f"{edge.url}/#/experiments/{experiments[EXPERIMENT]}/runs")
        browser.wait_for_text(RUN_NAME, timeout_s=90)
        _save("ui-experiment-runs-admin", browser.screenshot(), browser.dom())
    width, height = _png_size(png)
    assert (width, height) == (1400, 900)
    assert len(png) > 20_000, f"{shot} is only {len(png)} bytes: a blank page?"
    assert EXPERIMENT in dom and "mlflow" in dom.lower()


def test_a_viewer_sees_only_the_granted_experiment_in_the_ui(
    edge: Edge, experiments: dict[str, str], tmp_path: Path
) -> None:
    home = make_nss_home(tmp_path / "home", edge.ca_cert)
    with launch(home, log_path=artifacts_dir() / "chromium-viewer.log") as browser:
        browser.open_page()
        browser.set_basic_auth(*VIEWER)
        page = browser.navigate(edge.url + "/#/experiments")
        assert page.error_text is None and page.status == 200, page
        browser.wait_for_text(EXPERIMENT, timeout_s=90)
        links = _experiment_links(browser)
        # The user menu renders after the list (its own API call): wait for it, under load too.
        with contextlib.suppress(BrowserError):  # the assertion below says what is missing
            browser.wait_for_text(VIEWER[0], timeout_s=60)
        signed_in_as = browser.evaluate("document.body.innerText")
        png, dom = browser.screenshot(), browser.dom()
        _save("ui-experiments-viewer", png, dom)
    assert VIEWER[0] in signed_in_as, "the UI shows who is signed in"
    assert EXPERIMENT in links
    assert HIDDEN not in links and HIDDEN not in dom, "another team's experiment must not be listed"
    assert _png_size(png) == (1400, 900)


def test_the_browser_refuses_the_server_without_the_ca(edge: Edge, experiments: dict[str, str], tmp_path: Path) -> None:
    """The same browser without our CA in its trust store: the certificate is rejected, which
    is what makes the passing tests above proof of real TLS verification."""
    home = make_nss_home(tmp_path / "home", None)
    with launch(home, log_path=artifacts_dir() / "chromium-untrusted.log") as browser:
        browser.open_page()
        browser.set_basic_auth(*edge.admin)
        page = browser.navigate(edge.url + "/#/experiments")
    assert page.error_text == "net::ERR_CERT_AUTHORITY_INVALID", page
    assert edge.request("GET", "/health").status_code == 200, "while a client with the CA gets through"
