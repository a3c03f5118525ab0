"""The real-time hub: image leases, live edits from the op log, presence and progress.

``locks``, ``skip`` and ``timing`` are pure rules; ``leases`` applies them to the database;
``connection`` / ``hub`` / ``bus`` / ``endpoint`` are the I/O around them.
"""
