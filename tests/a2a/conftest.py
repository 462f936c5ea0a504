from tests.support.a2a_peers import a2a_peer_python  # noqa: F401  (re-exported fixture)
