"""Building customized load-balancer image revisions without root (DESIGN §6, issue 4).

``source`` unpacks the shipped base image, ``disk`` reads and writes files in its ext file system
with e2fsprogs, ``haproxy`` and ``sysctl`` render the files recon writes, ``build`` ties them into a
``Revision``, and ``testimage`` makes a small base image for tests and the demo.
"""
