package api

import _ "embed"

// openAPIDoc is the OpenAPI 3.0 description of this API, kept in the repo
// next to the code (R-API-1) and served at /api/v1/openapi.json without the
// admin token, so that tools can fetch it. openapi_test.go fails when a route
// or a field is added without being documented here.
//
//go:embed openapi.json
var openAPIDoc []byte
