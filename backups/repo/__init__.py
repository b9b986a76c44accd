"""Incremental, deduplicated backups (issue #14): a repository of blobs on a
storage target. This package needs neither Django nor a database, like
backups.engine.

So far: ``chunking`` — how a file is cut into blobs (Minecraft region files
at chunk boundaries, large files by FastCDC, small files whole), each cut
reproducible and lossless: the pieces of a file, in order, are the file.
"""
