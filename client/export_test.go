package client

// DecodeBody is decodeBody, for tests.
var DecodeBody = decodeBody
