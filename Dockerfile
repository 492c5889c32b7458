# tollgate: one static binary with every component.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o /tollgate ./cmd/tollgate

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /tollgate /tollgate
COPY deploy/demo/ /etc/tollgate/
ENTRYPOINT ["/tollgate"]
CMD ["run", "--config", "/etc/tollgate/config.yaml"]
