from django.test import Client


def test_sign_in_flood_is_429_per_address(db, rate_limits, make_user):
    """The fourth sign-in attempt in a day from one address is refused with Retry-After, even with
    the right password; another address still signs in."""
    rate_limits(login="3/d")
    make_user("carol", password="right-password")
    attacker = Client()
    for _ in range(3):
        wrong = attacker.post("/accounts/login/", {"username": "carol", "password": "guess"})
        assert wrong.status_code == 200  # the form again, with its error
    refused = attacker.post("/accounts/login/", {"username": "carol", "password": "right-password"})
    assert refused.status_code == 429 and 1 <= int(refused["Retry-After"]) <= 86400
    admin = attacker.post("/admin/login/", {"username": "carol", "password": "guess"})
    assert admin.status_code == 429
    other = Client(REMOTE_ADDR="10.0.0.2")
    assert (
        other.post("/accounts/login/", {"username": "carol", "password": "right-password"}).status_code == 302
    )
