"""Inbound mail and provider events: bounces, complaints, unsubscribe by mail (issue 12).

``parse`` reads reports (pure), ``verp`` makes and checks return paths, ``handler``
applies a report to the store, ``listener`` is the LMTP/SMTP receiver and
``webhooks`` the providers' signed event endpoints mounted by ``publisher web``.
"""
