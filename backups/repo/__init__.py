"""Incremental, deduplicated backups (issue #14): a repository of blobs on a
storage target. This package needs neither Django nor a database, like
backups.engine; docs/repository.md describes the format.

* ``chunking`` — how a file is cut into blobs: Minecraft region files at
  chunk boundaries, large files by FastCDC, small files whole; lossless.
* ``crypto`` — the repository key, keyed blob ids, sealed blobs and documents.
* ``pack`` — packs of sealed blobs with a sealed header (after restic).
* ``repository`` — init/open, backup (with the parent's speed path),
  restore (whole, or only some paths: a dimension, the player data, a file), check,
  the repository key wrapped by the site's key (opened with it alone; rotation re-wraps), forget and a two-phase prune; ``LocalStore`` (a folder).
* ``target_store`` — the same repository on an S3 or SFTP storage target.
* ``export`` — a snapshot streamed out as an ordinary tar.gz.
* ``verify`` — a snapshot verified with the archives' methods and quality
  score, its world checked from the blobs without writing a file.

Not yet: the server setting that chooses it, runs, the pages and the API,
retention by policy, the site's key export carrying the wrap (see the issue).
"""
