from proxy.accesslog cimport AccessLog
from proxy.http.exchange cimport Exchange
from proxy.stats cimport RouteStats
