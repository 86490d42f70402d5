"""The WeCom (企业微信) channel: callback crypto and parsing, replies, the REST client.

``crypto`` (signature, timestamp window, AES envelope), ``parse`` (callback XML → Event),
``render`` (neutral messages → WeCom JSON and passive XML), ``client`` (async REST API),
``callback`` (the aiohttp endpoint), ``texts`` (the channel's Chinese sentences).
"""
