from proxy.http.exchange cimport Exchange

