classdef PsyphyClient < handle
    % PsyphyClient  A MATLAB client of the psyphy_numpyro session server.
    %
    % Uses only webread/webwrite (MATLAB R2016b or later): no toolbox, no
    % Python. Also runs under GNU Octave >= 7, whose webwrite cannot send a
    % JSON body nor report an HTTP status: there it sends each request with
    % the curl program (on the PATH of Linux, macOS and Windows 10+).
    % Start the server first:
    %
    %     psyphy-numpyro serve --port 8765 --root sessions/
    %
    % Example
    % -------
    %     c = PsyphyClient('http://127.0.0.1:8765');           % token: 2nd argument
    %     s = c.session('obs1.sqlite', struct('input_dim', 2, 'seed', 0));
    %     [ids, ref, comparison] = c.ask(s, 1);   % ref, comparison: n x d, in [-1, 1]
    %     % ... show ref twice and comparison once, read the key ...
    %     c.tell(s, ids, 1);                      % 1 correct, 0 wrong
    %     st = c.status(s); fprintf('%d told\n', st.told);
    %
    % A tell is idempotent on the server (telling the same response again
    % records nothing), so tell retries a call that timed out or found no
    % server; ask sends a request id, so a retried ask gets the same trials.
    % A session the server no longer holds (it was restarted) is reopened by
    % ask and tell, if this client opened it (session) and did not close it;
    % status, thresholds and close never reopen (nor create) a session.
    % Errors raise MATLAB errors with identifier 'psyphy:http<status>' and
    % the server's message (409: the session is owned by another process).

    properties
        Url            % the server's address, e.g. 'http://127.0.0.1:8765'
        Token = ''     % the server's --token ('' if none)
        Timeout = 10   % seconds per request
        Retries = 5    % network retries of each call
    end

    properties (Access = private)
        Count = 0      % requests sent by this client (part of a request id without Java)
        Opened = {}    % the sessions this client opened (session) and has not closed
    end

    methods
        function obj = PsyphyClient(url, token)
            % PsyphyClient(url) or PsyphyClient(url, token)
            obj.Url = regexprep(url, '/+$', '');
            if nargin > 1 && ~isempty(token)
                obj.Token = token;
            end
        end

        function name = session(obj, name, settings)
            % Create or open session NAME (a file under the server's --root).
            % SETTINGS: a struct with any of input_dim, seed, num_initial,
            % refit_every, takeover (true to take it over from another owner).
            if nargin < 3 || isempty(settings)
                settings = struct();
            end
            settings.name = name;
            obj.call('POST', '/sessions', settings);
            if ~any(strcmp(obj.Opened, name))
                obj.Opened{end + 1} = name;
            end
        end

        function [ids, ref, comparison, reply] = ask(obj, name, n)
            % The next N trials: ids (n x 1), ref and comparison (n x d).
            if nargin < 3
                n = 1;
            end
            body = struct('n', n, 'request_id', obj.requestId());
            reply = obj.sessionCall('POST', name, 'ask', body);
            ids = reply.ids(:);
            ref = PsyphyClient.matrix(reply.ref, numel(ids));
            comparison = PsyphyClient.matrix(reply.comparison, numel(ids));
        end

        function reply = tell(obj, name, ids, responses)
            % Record RESPONSES (1 correct, 0 wrong) of trial IDS.
            body = struct('ids', {num2cell(double(ids(:)'))}, ...
                          'responses', {num2cell(double(responses(:)'))});
            reply = obj.sessionCall('POST', name, 'tell', body);
        end

        function st = status(obj, name)
            % Counts, fits and the refit state (told, pending, refit.state, ...).
            st = obj.sessionCall('GET', name, 'status', []);
        end

        function th = thresholds(obj, name)
            % The latest fit's thresholds (th.state: none/computing/ready/failed).
            th = obj.sessionCall('GET', name, 'thresholds', []);
        end

        function reply = close(obj, name)
            % Close the session on the server (no later call reopens it).
            try
                reply = obj.sessionCall('DELETE', name, '', []);
            catch err
                obj.Opened = obj.Opened(~strcmp(obj.Opened, name));
                rethrow(err);
            end
            obj.Opened = obj.Opened(~strcmp(obj.Opened, name));
        end

        function url = liveUrl(obj, name)
            % The address of the session's live page (open it in a browser).
            url = [obj.Url obj.path(name) '/live'];
            if ~isempty(obj.Token)
                url = [url '?token=' obj.Token];
            end
        end
    end

    methods (Access = private)
        function p = path(~, name)
            parts = strsplit(name, '/');
            for k = 1:numel(parts)
                parts{k} = PsyphyClient.escape(parts{k});
            end
            p = ['/sessions/' strjoin(parts, '/')];
        end

        function reply = sessionCall(obj, method, name, action, body)
            % METHOD on session NAME's ACTION ('' for the session itself). On HTTP 404
            % (the server does not hold the session): ask and tell of a session this
            % client opened reopen it (the server was restarted) and call again; any
            % other call is an error (a status never creates a session).
            p = obj.path(name);
            if ~isempty(action)
                p = [p '/' action];
            end
            try
                reply = obj.call(method, p, body);
                return
            catch err
                if ~strcmp(err.identifier, 'psyphy:http404')
                    rethrow(err);
                end
            end
            opened = any(strcmp(obj.Opened, name));
            if opened && any(strcmp(action, {'ask', 'tell'}))
                obj.session(name);  % the server was restarted: reopen, call again
                reply = obj.call(method, p, body);
                return
            end
            if isempty(action)
                action = 'close';
            end
            if opened
                why = sprintf(['the server no longer holds it (restarted, or closed by ' ...
                               'another client); %s does not reopen it (ask and tell do)'], ...
                              action);
            else
                why = ['this client has not opened it (or closed it): call ' ...
                       'session(name) first'];
            end
            error('psyphy:http404', 'session ''%s'' is not open in the server: %s; server: %s', ...
                  name, why, err.message);
        end

        function reply = call(obj, method, path, body)
            url = [obj.Url path];
            for attempt = 0:obj.Retries
                [code, reply, err] = obj.send(method, url, body);
                if code == 0
                    return
                end
                if ~isnan(code)  % the server answered: an error, not retried
                    error(sprintf('psyphy:http%d', code), '%s', ...
                          PsyphyClient.message(err));
                end
                if attempt == obj.Retries
                    rethrow(err);
                end
                pause(0.2 * 2 ^ attempt);  % no answer: retry (tell/ask are idempotent)
            end
        end

        function [code, reply, err] = send(obj, method, url, body)
            % One request. CODE: 0 answered, the HTTP status of an error answer, NaN
            % no answer (network); REPLY: the decoded JSON; ERR: the error (code ~= 0).
            if PsyphyClient.isOctave()
                [code, reply, err] = obj.sendCurl(method, url, body);
                return
            end
            code = 0;
            reply = [];
            err = [];
            opts = weboptions('MediaType', 'application/json', 'Timeout', obj.Timeout, ...
                              'RequestMethod', lower(method), 'ContentType', 'json');
            if ~isempty(obj.Token)
                opts.HeaderFields = {'Authorization', ['Bearer ' obj.Token]};
            end
            try
                if strcmp(method, 'POST')
                    reply = webwrite(url, jsonencode(body), opts);
                else
                    reply = webread(url, opts);
                end
            catch e
                err = e;
                status = regexp(e.message, 'Status (\d+)', 'tokens', 'once');
                if isempty(status)
                    code = NaN;
                else
                    code = str2double(status{1});
                end
            end
        end

        function [code, reply, err] = sendCurl(obj, method, url, body)
            % send through the curl program (Octave: its webwrite posts no JSON body
            % and its web errors carry no HTTP status).
            code = 0;
            reply = [];
            err = [];
            base = tempname();
            files = {[base '.out'], [base '.in'], [base '.hdr']};
            cleanup = onCleanup(@() PsyphyClient.remove(files));
            cmd = sprintf(['curl -sS -X %s --connect-timeout %g --max-time %g ' ...
                           '-o "%s" -w "%%{http_code}"'], method, obj.Timeout, ...
                          obj.Timeout, files{1});
            if ~isempty(obj.Token)  % in a file, not on the command line (process lists)
                PsyphyClient.write(files{3}, ['Authorization: Bearer ' obj.Token]);
                cmd = [cmd ' -H @"' files{3} '"'];
            end
            if strcmp(method, 'POST')
                PsyphyClient.write(files{2}, jsonencode(body));
                cmd = [cmd ' -H "Content-Type: application/json" --data-binary @"' ...
                       files{2} '"'];
            end
            [rc, out] = system([cmd ' "' url '" 2>&1']);  % curl's message on failure
            status = str2double(regexp(out, '\d{3}$', 'match', 'once'));
            text = '';
            if exist(files{1}, 'file')
                text = fileread(files{1});
            end
            if rc ~= 0 || isnan(status) || status == 0  % no answer: curl's message
                code = NaN;
                err = struct('identifier', 'psyphy:network', 'message', ...
                             sprintf('curl (exit %d) %s: %s', rc, url, strtrim(out)));
            elseif status >= 400
                code = status;
                err = struct('identifier', sprintf('psyphy:http%d', status), ...
                             'message', sprintf('Status %d: %s', status, text));
            elseif ~isempty(strtrim(text))
                reply = jsondecode(text);
            end
        end

        function id = requestId(obj)
            % A unique request id: a UUID from Java where MATLAB has its JVM, else
            % (Octave, matlab -nojvm) the clock in microseconds, the process and a
            % count of this client's requests (the user's rand stream is left alone).
            obj.Count = obj.Count + 1;
            if usejava('jvm')
                id = char(java.util.UUID.randomUUID());
                return
            end
            pid = 0;
            if PsyphyClient.isOctave()
                pid = getpid();
            end
            id = sprintf('%s-%x-%x-%x', datestr(now, 'yyyymmddHHMMSSFFF'), ...
                         double(tic), pid, obj.Count);
        end
    end

    methods (Static, Access = private)
        function m = matrix(x, n)
            % JSON arrays of arrays arrive as n x d matrices or cells; make n x d.
            if iscell(x)
                m = cell2mat(cellfun(@(r) r(:)', x(:), 'UniformOutput', false));
            else
                m = double(x);
                if size(m, 1) ~= n
                    m = m';
                end
            end
        end

        function tf = isOctave()
            tf = exist('OCTAVE_VERSION', 'builtin') ~= 0;
        end

        function s = escape(s)
            % A path segment, percent-encoded: every UTF-8 byte but the unreserved ones.
            % (MATLAB's urlencode writes a space as '+', which a path keeps as a '+';
            % Octave has no urlencode.)
            bytes = PsyphyClient.utf8(s);
            keep = ismember(bytes, double(['A':'Z' 'a':'z' '0':'9' '-._~']));
            out = cell(1, numel(bytes));
            for k = 1:numel(bytes)
                if keep(k)
                    out{k} = char(bytes(k));
                else
                    out{k} = sprintf('%%%02X', bytes(k));
                end
            end
            s = [out{:}];
        end

        function bytes = utf8(s)
            % The UTF-8 bytes of a char row (Octave's chars already are).
            if PsyphyClient.isOctave()
                bytes = double(s);
            else
                bytes = double(unicode2native(s, 'UTF-8'));
            end
        end

        function write(file, text)
            fid = fopen(file, 'w');
            fwrite(fid, text, 'char');
            fclose(fid);
        end

        function remove(files)
            for k = 1:numel(files)
                if exist(files{k}, 'file')
                    delete(files{k});
                end
            end
        end

        function text = message(err)
            % The server's "error" field when MATLAB kept the body, else MATLAB's message.
            text = err.message;
            tok = regexp(text, '"error"\s*:\s*"((?:[^"\\]|\\.)*)"', 'tokens', 'once');
            if ~isempty(tok)
                text = tok{1};
            end
        end
    end
end
