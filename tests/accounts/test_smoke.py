from tests.factories import user_session


async def test_register_and_me(client):
    user = await user_session(client, "smoky")
    response = await client.get("/api/v1/users/me", headers=user.headers)
    assert response.status_code == 200
    assert response.json()["username"] == "smoky"
