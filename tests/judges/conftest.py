"""The CLI runner's fixtures, for the judges that drive a home through `pkictl` (test_relying_parties)."""

from tests.cli.conftest import cheap_password_hashing, cli, engines  # noqa: F401 (fixtures)
