"""The benchmark of issue 6: userbase beside its peers on one PostgreSQL database (`make bench`)."""
