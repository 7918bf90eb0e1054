"""The station's database and image files, owned in one place.

``db``          the connection (WAL, ``synchronous=FULL``, busy timeout) and the boundary where a damaged,
                read-only or locked file becomes one :class:`~engine.storage.db.DatabaseError` sentence
``migrations``  the numbered, frozen steps of the schema
``images``      the content-addressed PNG files (``images/<2 hex>/<sha256>.png``), written atomically
``queries``     the reads of ``frames`` and ``decisions`` that several features share
"""
