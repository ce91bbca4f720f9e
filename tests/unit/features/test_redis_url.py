"""AUGUR_REDIS_URL's Feast-style string as redis-py's keyword arguments."""

from augur.features.redis_url import redis_options


def test_host_port_and_options() -> None:
    assert redis_options("redis.data.svc:6380,db=2,password=s3cr=t,ssl=True") == {
        "host": "redis.data.svc",
        "port": 6380,
        "db": 2,
        "password": "s3cr=t",
        "ssl": True,
    }
    assert redis_options(":6379") == {"host": "localhost", "port": 6379}
    assert redis_options("127.0.0.1:7000,unknown=1") == {"host": "127.0.0.1", "port": 7000}
