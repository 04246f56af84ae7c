"""varai-deploy as an Airflow provider: what ``ProvidersManager`` reads through the entry point.

``pyproject.toml`` registers :func:`get_provider_info` under ``apache_airflow_provider``, so every
Airflow process of a venv with the project installed (``make setup`` installs it editable) knows the
connection types below: the UI offers them under Admin > Connections with the fields each hook reads,
relabelled, and ``airflow providers list`` / ``airflow providers hooks`` show them.

Only hooks whose connection means something of their own get a type here. The gateway and Prometheus
hooks are plain HTTP (``http``, the HTTP provider's) and the CDN is a Google Cloud connection
(``google_cloud_platform``, the Google provider's, whose credential fields it needs): a connection type
belongs to one provider, so those are not claimed again. Terraform takes no connection.

A connection of the older, generic type (``generic`` for npm and SVN, ``http`` for Shopify and the
Magento Marketplace) keeps working: the hooks read the same fields whatever the type says.

The form is declared here (``conn-fields``, ``ui-field-behaviour``), the way Airflow 3.2+ wants it,
not through the hooks' deprecated ``get_connection_form_widgets``: nothing is imported to build it.
Keep ``hook-name`` equal to each hook's ``hook_name`` (``tests/varai_deploy/test_provider_info.py``).
"""

from __future__ import annotations

from typing import Any

PACKAGE_NAME = "varai-deploy"


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": PACKAGE_NAME,
        "name": "VarAI deploy",
        "description": "Releases and operations of the VarAI AI Discovery platform: the widget channels' "
        "connection types (npm registry, WordPress.org SVN, Shopify Partners API, Magento Marketplace EQP API).",
        "integrations": [
            {"integration-name": name, "external-doc-url": url, "tags": ["service"]}
            for name, url in (
                ("npm registry", "https://docs.npmjs.com/cli/v10/using-npm/registry"),
                (
                    "WordPress.org plugin SVN",
                    "https://developer.wordpress.org/plugins/wordpress-org/how-to-use-subversion/",
                ),
                ("Shopify Partners API", "https://shopify.dev/docs/api/partner"),
                ("Magento Marketplace EQP API", "https://developer.adobe.com/commerce/marketplace/guides/eqp/v1/"),
            )
        ],
        "hooks": [
            {"integration-name": "npm registry", "python-modules": ["varai_deploy.hooks.npm"]},
            {"integration-name": "WordPress.org plugin SVN", "python-modules": ["varai_deploy.hooks.wordpress_svn"]},
            {"integration-name": "Shopify Partners API", "python-modules": ["varai_deploy.hooks.shopify"]},
            {
                "integration-name": "Magento Marketplace EQP API",
                "python-modules": ["varai_deploy.hooks.magento_marketplace"],
            },
        ],
        "connection-types": [
            {
                "connection-type": "varai_npm",
                "hook-class-name": "varai_deploy.hooks.npm.NpmRegistryHook",
                "hook-name": "VarAI npm registry",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "extra"],
                    "relabeling": {
                        "host": "Registry URL",
                        "login": "Registry user (only to log in with a password)",
                        "password": "Automation token (or that user's password)",
                    },
                    "placeholders": {"host": "https://registry.npmjs.org/"},
                },
            },
            {
                "connection-type": "varai_wordpress_svn",
                "hook-class-name": "varai_deploy.hooks.wordpress_svn.WordPressSvnHook",
                "hook-name": "WordPress.org plugin SVN",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "extra"],
                    "relabeling": {
                        "host": "Repository URL",
                        "login": "WordPress.org username",
                        "password": "SVN password",
                    },
                    "placeholders": {"host": "https://plugins.svn.wordpress.org/varai-ai-discovery"},
                },
            },
            {
                "connection-type": "varai_shopify",
                "hook-class-name": "varai_deploy.hooks.shopify.ShopifyHook",
                "hook-name": "VarAI Shopify app (Partners API)",
                "ui-field-behaviour": {
                    "hidden-fields": ["login"],
                    "relabeling": {"password": "Partners access token"},
                    "placeholders": {"host": "partners.shopify.com", "schema": "https"},
                },
                "conn-fields": {
                    "api_key": {
                        "label": "App client ID",
                        "schema": {"type": ["string", "null"]},
                        "description": "The app's client id (Partner Dashboard, or `shopify app info`).",
                    }
                },
            },
            {
                "connection-type": "varai_magento_marketplace",
                "hook-class-name": "varai_deploy.hooks.magento_marketplace.MagentoMarketplaceHook",
                "hook-name": "Magento Marketplace EQP API",
                "ui-field-behaviour": {
                    "hidden-fields": [],
                    "relabeling": {"login": "API application ID", "password": "API application secret"},
                    "placeholders": {"host": "commercedeveloper-api.adobe.com", "schema": "https"},
                },
            },
        ],
    }
