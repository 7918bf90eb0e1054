"""The station's database: connection, migrations, the image store and the queries other modules share."""
