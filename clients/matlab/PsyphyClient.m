classdef PsyphyClient < handle
    % PsyphyClient  A MATLAB client of the psyphy_numpyro session server.
    %
    % Uses only webread/webwrite (MATLAB R2016b or later): no toolbox, no
    % Python. Start the server first:
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
    % Errors raise MATLAB errors with identifier 'psyphy:http<status>' and
    % the server's message (409: the session is owned by another process).

    properties
        Url            % the server's address, e.g. 'http://127.0.0.1:8765'
        Token = ''     % the server's --token ('' if none)
        Timeout = 10   % seconds per request
        Retries = 5    % network retries of each call
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
        end

        function [ids, ref, comparison, reply] = ask(obj, name, n)
            % The next N trials: ids (n x 1), ref and comparison (n x d).
            if nargin < 3
                n = 1;
            end
            body = struct('n', n, 'request_id', char(java.util.UUID.randomUUID()));
            reply = obj.call('POST', [obj.path(name) '/ask'], body);
            ids = reply.ids(:);
            ref = PsyphyClient.matrix(reply.ref, numel(ids));
            comparison = PsyphyClient.matrix(reply.comparison, numel(ids));
        end

        function reply = tell(obj, name, ids, responses)
            % Record RESPONSES (1 correct, 0 wrong) of trial IDS.
            body = struct('ids', {num2cell(double(ids(:)'))}, ...
                          'responses', {num2cell(double(responses(:)'))});
            reply = obj.call('POST', [obj.path(name) '/tell'], body);
        end

        function st = status(obj, name)
            % Counts, fits and the refit state (told, pending, refit.state, ...).
            st = obj.call('GET', [obj.path(name) '/status'], []);
        end

        function th = thresholds(obj, name)
            % The latest fit's thresholds (th.state: none/computing/ready/failed).
            th = obj.call('GET', [obj.path(name) '/thresholds'], []);
        end

        function reply = close(obj, name)
            % Close the session on the server.
            reply = obj.call('DELETE', obj.path(name), []);
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
                parts{k} = urlencode(parts{k});
            end
            p = ['/sessions/' strjoin(parts, '/')];
        end

        function reply = call(obj, method, path, body)
            opts = weboptions('MediaType', 'application/json', 'Timeout', obj.Timeout, ...
                              'RequestMethod', lower(method), 'ContentType', 'json');
            if ~isempty(obj.Token)
                opts.HeaderFields = {'Authorization', ['Bearer ' obj.Token]};
            end
            url = [obj.Url path];
            for attempt = 0:obj.Retries
                try
                    if strcmp(method, 'POST')
                        reply = webwrite(url, jsonencode(body), opts);
                    else
                        reply = webread(url, opts);
                    end
                    return
                catch err
                    status = regexp(err.message, 'Status (\d+)', 'tokens', 'once');
                    if ~isempty(status)  % the server answered: an error, not retried
                        code = str2double(status{1});
                        if code == 404 && ~strcmp(method, 'DELETE') && ...
                                ~strcmp(path, '/sessions') && attempt < obj.Retries
                            % the server was restarted: reopen the session, try again
                            name = regexprep(path, '^/sessions/|/[a-z.]+$', '');
                            obj.session(urldecode(name));
                            continue
                        end
                        error(sprintf('psyphy:http%d', code), '%s', ...
                              PsyphyClient.message(err));
                    end
                    if attempt == obj.Retries
                        rethrow(err);
                    end
                    pause(0.2 * 2 ^ attempt);  % no answer: retry (tell/ask are idempotent)
                end
            end
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
