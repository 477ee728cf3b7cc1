// What Zabbix gives a webhook script, for running one outside Zabbix: HttpRequest, its 5.x predecessor
// CurlHttpRequest (capitalised methods) and Zabbix.log (Zabbix.Log in 5.x). The HTTP is real: the runtime defines `transport(method, url, headers, body)`,
// which performs the request and returns [status, body], or throws as Zabbix does when the request fails.
// ECMAScript 5.1, like the scripts it hosts.

var zabbixLog = [];

var Zabbix = {
    log: function (level, message) {
        zabbixLog.push([level, String(message)]);
    }
};
Zabbix.Log = Zabbix.log;

function HttpRequest() {
    this.headers = [];
    this.status = 0;
    this.proxy = null;
}

HttpRequest.prototype.addHeader = function (header) {
    this.headers.push(String(header));
};

HttpRequest.prototype.clearHeader = function () {
    this.headers = [];
};

HttpRequest.prototype.setProxy = function (proxy) {
    this.proxy = String(proxy);
};

HttpRequest.prototype.getStatus = function () {
    return this.status;
};

HttpRequest.prototype.request = function (method, url, data) {
    var answer = transport(method, String(url), this.headers, data === undefined ? '' : String(data));
    this.status = answer[0];
    return answer[1];
};

HttpRequest.prototype.get = function (url, data) {
    return this.request('GET', url, data);
};

HttpRequest.prototype.post = function (url, data) {
    return this.request('POST', url, data);
};

HttpRequest.prototype.put = function (url, data) {
    return this.request('PUT', url, data);
};

function CurlHttpRequest() {
    HttpRequest.call(this);
}

CurlHttpRequest.prototype = new HttpRequest();
CurlHttpRequest.prototype.AddHeader = HttpRequest.prototype.addHeader;
CurlHttpRequest.prototype.ClearHeader = HttpRequest.prototype.clearHeader;
CurlHttpRequest.prototype.SetProxy = HttpRequest.prototype.setProxy;
CurlHttpRequest.prototype.Status = HttpRequest.prototype.getStatus;
CurlHttpRequest.prototype.Get = HttpRequest.prototype.get;
CurlHttpRequest.prototype.Post = HttpRequest.prototype.post;
CurlHttpRequest.prototype.Put = HttpRequest.prototype.put;
