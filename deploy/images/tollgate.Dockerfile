# tollgate for hosts that cannot pull golang or distroless: the static binary that
# deploy/images/build.sh builds, FROM scratch, with the same layout as the repo's Dockerfile.
FROM scratch
COPY tollgate /tollgate
COPY demo/ /etc/tollgate/
USER 65532:65532
ENTRYPOINT ["/tollgate"]
CMD ["run", "--config", "/etc/tollgate/config.yaml"]
