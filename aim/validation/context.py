"""The GX objects: a file context, a pandas data source, one checkpoint per split, data docs.

Layout under ``validation.docs_dir`` (say ``artifacts/validation``)::

    index.html             the data docs a person opens: every validation run, pass/fail
    validations/ ...       one HTML page per run (split, or split chunk)
    expectations/ ...      one HTML page per suite
    static/ ...            the docs' CSS and scripts
    gx/                    the GX file context (config, suites, checkpoints, stored results)

Re-running works: the data source, assets and batch definitions are fetched or created by
name; each split's suite, validation definition and checkpoint are replaced (their stored keys
removed, then ``checkpoints.add_or_update`` adds all three). A moved project folder is fine
(the docs site path is relative to the context). The index lists the newest
:data:`INDEX_LIMIT` runs; older pages and stored results stay on disk.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

import great_expectations as gx
import pandas as pd
from great_expectations.core import ExpectationSuiteValidationResult
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.types.base import ProgressBarsConfig

SITE = "aim_data_docs"
SOURCE = "aim_prepared"
BATCH = "whole_frame"
CONTEXT_FOLDER = "gx"
INDEX = "index.html"
INDEX_LIMIT = 60  # validation runs listed on the index page (newest first)


class ValidationContext:
    """A GX file context in ``docs_dir/gx`` whose data docs site is ``docs_dir`` itself."""

    def __init__(self, docs_dir: Path):
        self.docs_dir = docs_dir.resolve()
        self.docs_dir.mkdir(parents=True, exist_ok=True)
        self.context = gx.get_context(mode="file", context_root_dir=str(self.docs_dir / CONTEXT_FOLDER))
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        if self.context.config.analytics_enabled is not False:
            self.context.enable_analytics(False)  # also GX_ANALYTICS_ENABLED=false (aim/validation/__init__.py)
        self._configure_site()
        self.source = self._data_source()

    @property
    def index(self) -> Path:
        """The data docs entry page."""
        return self.docs_dir / INDEX

    def _configure_site(self) -> None:
        """One filesystem site at ``docs_dir`` (GX's default ``local_site`` is dropped)."""
        site = {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": ".."},
            # The index reads every listed result at each update: list only the latest runs.
            "site_index_builder": {
                "class_name": "DefaultSiteIndexBuilder",
                "validation_results_limit": INDEX_LIMIT,
            },
        }
        sites = dict(self.context.config.data_docs_sites or {})
        for name in sites:
            if name != SITE:
                self.context.delete_data_docs_site(name)
        if SITE in sites:
            self.context.update_data_docs_site(SITE, site)
        else:
            self.context.add_data_docs_site(SITE, site)

    def _data_source(self):
        """The pandas data source, created once and then reused (keeping its assets)."""
        try:
            return self.context.data_sources.get(SOURCE)
        except (KeyError, ValueError, LookupError):
            return self.context.data_sources.add_pandas(SOURCE)

    def _batch_definition(self, asset_name: str):
        """The whole-dataframe batch definition of asset ``asset_name`` (get or create)."""
        if asset_name in self.source.get_asset_names():
            asset = self.source.get_asset(asset_name)
        else:
            asset = self.source.add_dataframe_asset(asset_name)
        for definition in asset.batch_definitions:
            if definition.name == BATCH:
                return definition
        return asset.add_batch_definition_whole_dataframe(BATCH)

    def checkpoint(self, name: str, suite: gx.ExpectationSuite) -> gx.Checkpoint:
        """Store ``suite`` and a validation definition + checkpoint named ``name`` over asset ``name``.

        The checkpoint's ``UpdateDataDocsAction`` writes the run's page and the index. A stored
        checkpoint, validation definition and suite of that name are replaced: deleted here, then
        added by ``checkpoints.add_or_update`` (which adds its validation definition and suite).
        Updating a stored suite in place would compare every new expectation with every stored
        one (quadratic: seconds for a suite of a hundred expectations).
        """
        self._forget(name)
        definition = gx.ValidationDefinition(name=name, data=self._batch_definition(name), suite=suite)
        return self.context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=name,
                validation_definitions=[definition],
                actions=[gx.checkpoint.UpdateDataDocsAction(name="update_data_docs", site_names=[SITE])],
                result_format={"result_format": "SUMMARY", "partial_unexpected_count": 20},
            )
        )

    def _forget(self, name: str) -> None:
        """Remove the stored checkpoint, validation definition and suite ``name`` (those that exist).

        Keys are removed from the stores directly: going through ``checkpoints.delete`` would first
        load the object, which fails when a reference of it is already gone.
        """
        stores = (
            self.context.checkpoint_store,
            self.context.validation_definition_store,
            self.context.expectations_store,
        )
        for store in stores:
            key = store.get_key(name=name)
            if store.has_key(key):
                store.remove_key(key)

    def run(
        self, checkpoint: gx.Checkpoint, frame: pd.DataFrame, run_name: str
    ) -> tuple[ExpectationSuiteValidationResult, Path | None]:
        """Validate ``frame`` with ``checkpoint``; returns the result and its data docs page."""
        result = checkpoint.run(
            batch_parameters={"dataframe": frame}, run_id=RunIdentifier(run_name=run_name, run_time=datetime.now(UTC))
        )
        ((identifier, validation),) = result.run_results.items()
        return validation, self._page(identifier)

    def _page(self, identifier) -> Path | None:
        urls = self.context.get_docs_sites_urls(resource_identifier=identifier, site_names=[SITE])
        url = urls[0].get("site_url") if urls else None
        return Path(unquote(urlparse(url).path)).resolve() if url else None

    def ensure_index(self) -> Path:
        """Build the data docs index if no checkpoint has written it yet; returns its path."""
        if not self.index.exists():
            self.context.build_data_docs(site_names=[SITE])
        return self.index
