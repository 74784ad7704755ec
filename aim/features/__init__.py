"""Feast feature store over the prepared data: entity attribute views and point-in-time training sets.

One job per module:

* :mod:`aim.features.layout` – where everything lives under ``features.store_dir`` and the
  manifest (``manifest.json``) that describes the exported views;
* :mod:`aim.features.prepared` – the prepared folder: meta.json checks, a DuckDB ``events`` view;
* :mod:`aim.features.views` – which fields are attributes of which entity (configured or derived);
* :mod:`aim.features.export` – per-entity attribute tables (parquet, point-in-time stamped);
* :mod:`aim.features.definitions` – the Feast objects (Entity, FileSource, FeatureView);
* :mod:`aim.features.store` – the ``RepoConfig`` / ``FeatureStore`` factory, apply and materialize;
* :mod:`aim.features.assemble` – train/valid/test arrays by ``get_historical_features``;
* :mod:`aim.features.online` – encoded attribute ids for raw keys from the online store.

Feast is imported lazily by the modules that need it: it takes seconds to import.
"""
