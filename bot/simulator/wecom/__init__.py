"""A fake WeCom (企业微信) that speaks the real wire protocol both ways.

As the platform's API server it serves, under ``/cgi-bin/``, ``gettoken``, ``message/send``
(text, file, template_card), ``message/update_template_card``, ``media/upload`` and
``media/get``, with the platform's rules and error codes. As the platform's callback sender it
signs and encrypts messages and events from a user and POSTs them to the app's callback URL,
then verifies and decrypts the passive reply, which it returns. Everything is recorded.

Split like aiohttp splits app, routes and runner:

- ``rules``: the limits, error codes, clock and the state the platform keeps (tokens, cards,
  response codes, media, send windows, injected faults), and the checks over them;
- ``records``: what happened (REST calls, each user's conversation, dropped sends, callbacks);
- ``rest``: the REST handlers the app calls (``add_rest_routes``);
- ``user``: the user side, the callbacks it sends (``send_text``, ``click_button``, ...);
- ``sim``: :class:`~bot.simulator.wecom.sim.WecomSimulator`, which holds the configuration,
  mounts the API and the chat page (``bot.simulator.page``) with ``add_routes(app)`` and serves
  them (``bot.simulator.runner``).

Import the names from ``bot.simulator`` (this ``__init__`` imports nothing, so that
``bot.simulator.page`` can use ``rest.media_response`` without an import circle).
"""
