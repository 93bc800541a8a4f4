# Images of the compose stack (docker-compose.yml), one Dockerfile, three targets:
#   loadkit  Locust master, workers and the sink (python:3.11-slim + loadkit)
#   postfix  Postfix relaying everything to the sink (docker/postfix-entrypoint)
#   apache   Apache with mod_status open to the stack's network

FROM python:3.11-slim AS loadkit
WORKDIR /app
COPY pyproject.toml README.md ./
COPY loadkit ./loadkit
RUN pip install --no-cache-dir .
COPY locustfiles ./locustfiles
COPY docker ./docker
RUN mkdir -p reports
# 8089 web UI, 5557 master<-workers, 2525 the sink
EXPOSE 8089 5557 2525
CMD ["locust", "-f", "locustfiles/smtp.py"]

FROM loadkit AS postfix
RUN echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections \
    && apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postfix \
    && rm -rf /var/lib/apt/lists/*
EXPOSE 25
CMD ["docker/postfix-entrypoint"]

FROM python:3.11-slim AS apache
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends apache2 \
    && rm -rf /var/lib/apt/lists/*
COPY docker/apache-status.conf /etc/apache2/conf-enabled/loadkit-status.conf
EXPOSE 80
CMD ["apache2ctl", "-D", "FOREGROUND"]
