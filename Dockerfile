# Twitchminert: Prometheus exporter and supervisor for TwitchDropsMiner (TDM).
#
#   docker build -t twitchminert .
#   docker run --rm -p 127.0.0.1:9797:9797 twitchminert demo --web.listen-address 0.0.0.0:9797
#
# To supervise a real TDM, mount its folder at /tdm (see docker-compose.yml and
# examples/docker/twitchminert.yaml). For a TDM *source* checkout, install its Python packages too:
#   docker build --build-arg EXTRA_PIP_PACKAGES="<packages from TDM's requirements.txt>" -t twitchminert .
FROM python:3.12-slim-bookworm

LABEL org.opencontainers.image.title="twitchminert" \
      org.opencontainers.image.description="Prometheus exporter and supervisor for TwitchDropsMiner" \
      org.opencontainers.image.licenses="MIT"

# xvfb: TDM is a Tk GUI and needs an X display; the supervisor starts a private Xvfb when there is
#       no DISPLAY (miner.display: auto).
# python3-tk: pulls in the Tcl/Tk libraries that the interpreter's tkinter module loads at run time
#       (the slim image builds tkinter but does not ship Tk).
# fonts-dejavu-core: a font for Tk to draw with. tzdata: TDM logs local time; TZ selects the zone.
# No curl in slim: the healthcheck below uses Python's urllib.
RUN apt-get update \
 && apt-get install -y --no-install-recommends xvfb python3-tk fonts-dejavu-core tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && python -c "import tkinter; tkinter.Tcl()"

# Extra Python packages for the supervised TDM (e.g. a source checkout's requirements); empty = none.
ARG EXTRA_PIP_PACKAGES=""

WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN pip install --no-cache-dir . \
 && if [ -n "$EXTRA_PIP_PACKAGES" ]; then pip install --no-cache-dir $EXTRA_PIP_PACKAGES; fi \
 && rm -rf /src

# Unprivileged user; /config holds twitchminert.yaml, /data the store and captured output,
# /tdm is where TDM's folder is mounted.
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/twitchminert \
        --shell /usr/sbin/nologin twitchminert \
 && mkdir -p /config /data /tdm \
 && chown twitchminert:twitchminert /data /tdm
COPY examples/docker/twitchminert.yaml /config/twitchminert.yaml

ENV PYTHONUNBUFFERED=1 \
    TWITCHMINERT_HOME=/data
WORKDIR /data
VOLUME ["/data"]
USER twitchminert
EXPOSE 9797

# /-/healthy answers 200 while the exporter runs (never behind basic auth). If you serve TLS
# (--web.config.file), override the healthcheck in compose.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9797/-/healthy', timeout=4)"]

ENTRYPOINT ["twitchminert"]
CMD ["run", "--config.file", "/config/twitchminert.yaml", "--web.listen-address", "0.0.0.0:9797"]
