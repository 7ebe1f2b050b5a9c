function smoke_test(url, name)
% SMOKE_TEST  Drive a session of a running server with PsyphyClient; error on anything wrong.
%
%   smoke_test('http://127.0.0.1:8765')             % session 'smoke.sqlite'
%   smoke_test('http://127.0.0.1:8765', 'a.sqlite')
%
% Creates (or opens) a session that never refits (num_initial 10000), asks 3 trials
% then 1, tells their responses (and tells them again: recorded 0), checks the error
% identifiers of a conflicting tell and of an unknown id; then what a 404 does: the
% status of a session never opened ('never opened.sqlite') is an error and creates
% nothing; with the session closed by another client (as by a server restart) status is
% an error and tell reopens it; once this client closed it, status and ask are errors
% until session() reopens it. Prints 'smoke_test: ok told <n> ids <ids>' last.
% Run from a shell (exit status 1 on any error):
%
%   octave-cli --eval "addpath('clients/matlab'); smoke_test('http://127.0.0.1:8765')"
%   matlab -batch "addpath('clients/matlab'); smoke_test('http://127.0.0.1:8765')"
%
% tests/test_matlab_client.py runs it under Octave against a real server.

if nargin < 2
    name = 'smoke.sqlite';
end
c = PsyphyClient(url);
c.Retries = 2;
s = c.session(name, struct('input_dim', 2, 'seed', 0, 'num_initial', 10000, ...
                           'refit_every', 10000));
check(strcmp(s, name), 'session returned %s', s);
st = c.status(s);
told0 = st.told;

% three trials: ids 3 x 1, ref and comparison 3 x 2 in [-1, 1]
[ids, ref, comparison, reply] = c.ask(s, 3);
check(isequal(size(ids), [3 1]) && numel(unique(ids)) == 3, 'ids: %s', mat2str(ids));
check(isequal(size(ref), [3 2]) && isequal(size(comparison), [3 2]), ...
      'ref %s, comparison %s', mat2str(size(ref)), mat2str(size(comparison)));
check(all(abs([ref(:); comparison(:)]) <= 1), 'stimuli out of [-1, 1]');
check(isfield(reply, 'refit'), 'the reply of ask has no refit field');

r = c.tell(s, ids, [1 0 1]);
check(r.recorded == 3, 'tell recorded %d, not 3', r.recorded);
% a retried tell (the same responses) records nothing
r = c.tell(s, ids, [1 0 1]);
check(r.recorded == 0, 'the retried tell recorded %d, not 0', r.recorded);
% a different response to a told trial, and an unknown id: HTTP 400, nothing recorded
expect_error(@() c.tell(s, ids(1), 0), 'psyphy:http400');
expect_error(@() c.tell(s, 123456, 1), 'psyphy:http400', 'unknown trial id');

% one trial: ids 1 x 1, ref and comparison 1 x 2
[id1, ref1, comparison1] = c.ask(s, 1);
check(isscalar(id1) && isequal(size(ref1), [1 2]) && isequal(size(comparison1), [1 2]), ...
      'one trial: id %s, ref %s', mat2str(size(id1)), mat2str(size(ref1)));
r = c.tell(s, id1, 1);
check(r.recorded == 1, 'tell of one trial recorded %d', r.recorded);

st = c.status(s);
check(st.told == told0 + 4 && st.pending == 0, 'status: told %d, pending %d', ...
      st.told, st.pending);
check(strcmp(st.refit.state, 'not_due'), 'refit state %s', st.refit.state);
th = c.thresholds(s);
check(strcmp(th.state, 'none'), 'thresholds state %s', th.state);

% a session this client never opened: an error, nothing created (nor for close)
expect_error(@() c.status('never opened.sqlite'), 'psyphy:http404', 'has not opened');
expect_error(@() c.close('never opened.sqlite'), 'psyphy:http404', 'has not opened');
% closed by another client (as by a server restart): status is an error, tell reopens it
c2 = PsyphyClient(url);
c2.close(c2.session(s));
expect_error(@() c.status(s), 'psyphy:http404', 'status does not reopen');
r = c.tell(s, id1, 1);
check(r.recorded == 0, 'the tell that reopened the session recorded %d', r.recorded);
% closed by this client: no call reopens it, session() does
c.close(s);
expect_error(@() c.ask(s, 1), 'psyphy:http404', 'has not opened');
c.session(s);
st = c.status(s);
check(st.told == told0 + 4 && st.pending == 0, 'after reopening: told %d, pending %d', ...
      st.told, st.pending);
check(~isempty(strfind(c.liveUrl(s), '/live')), 'liveUrl %s', c.liveUrl(s));

fprintf('smoke_test: ok told %d ids %s\n', st.told, sprintf('%d ', [ids; id1]));
end


function check(ok, varargin)
if ~ok
    error('smoke_test:failed', varargin{:});
end
end


function expect_error(fn, identifier, text)
try
    fn();
catch err
    check(strcmp(err.identifier, identifier), 'error %s (%s), not %s', ...
          err.identifier, err.message, identifier);
    if nargin > 2
        check(~isempty(strfind(err.message, text)), 'error message: %s', err.message);
    end
    return
end
error('smoke_test:failed', 'no error (expected %s)', identifier);
end
