"""Where the demo page is served (`hub.demo`): in development, for its `demo` product or the
one `HUB_DEMO_PRODUCT` names; in production only for the product `HUB_DEMO_PRODUCT` names;
anywhere else `/demo` is the ordinary 404. The page in a browser: tests/test_demo_page.py."""

from __future__ import annotations

import json

import httpx
import pytest

from infra.settings import Settings, SettingsError
from tests.support import HubServer, production_hub


def page_config(script: str) -> dict:
    prefix = "window.HUB_DEMO = "
    assert script.startswith(prefix) and script.endswith(";\n"), script
    return json.loads(script[len(prefix) : -2])


def test_the_setting_names_a_product_slug():
    assert Settings.from_env({}).demo_product is None
    assert Settings.from_env({"HUB_DEMO_PRODUCT": "shop-1"}).demo_product == "shop-1"
    for bad in ("Shop", "-shop", "shop/x", "a" * 65):
        with pytest.raises(SettingsError, match="HUB_DEMO_PRODUCT"):
            Settings.from_env({"HUB_DEMO_PRODUCT": bad})


def test_production_serves_no_demo_page_without_the_setting(tmp_path):
    with production_hub(tmp_path) as hub:
        for path in ("/demo", "/demo/", "/demo/demo.js", "/demo/config.js"):
            response = httpx.get(hub.url + path)
            assert response.status_code == 404, path
            assert response.json()["error"]["code"] == "request.not_found"


def test_production_serves_it_for_the_named_product(tmp_path):
    with production_hub(tmp_path, HUB_DEMO_PRODUCT="shop") as hub:
        assert httpx.get(hub.url + "/demo").headers["location"] == "/demo/"
        page = httpx.get(hub.url + "/demo/")
        assert page.status_code == 200 and "<title>notification-hub demo</title>" in page.text
        config = httpx.get(hub.url + "/demo/config.js")
        assert config.headers["content-type"].startswith("text/javascript")
        assert page_config(config.text) == {"product": "shop", "development": False}
        # The product does not exist: the page is served, and the log says why it cannot work.
        assert "HUB_DEMO_PRODUCT=shop: no such product" in hub.logs()


def test_development_serves_it_for_demo_or_the_named_product(tmp_path):
    for extra, product in (({}, "demo"), ({"HUB_DEMO_PRODUCT": "shop"}, "shop")):
        hub = HubServer(workdir=tmp_path / product, extra_env=extra)
        hub.workdir.mkdir()
        hub.start()
        try:
            config = httpx.get(hub.url + "/demo/config.js")
            assert page_config(config.text) == {"product": product, "development": True}
        finally:
            hub.stop()
