from proxy.stats cimport RouteStats
