namespace Sandbox.Agent.Containers;

/// <summary>Builds crun argument lists (argv[0] included). Global options first, then the command.</summary>
public sealed class CrunCommandLine(string crunPath, string stateRoot, IReadOnlyList<string> extraGlobalOptions)
{
    private List<string> Global(string logFile)
    {
        var args = new List<string> { crunPath, "--root", stateRoot, "--log", logFile };
        args.AddRange(extraGlobalOptions);
        return args;
    }

    public List<string> Create(string logFile, string id, string bundle, string pidFile, string? consoleSocket)
    {
        var args = Global(logFile);
        args.AddRange(["create", "--bundle", bundle, "--pid-file", pidFile]);
        if (consoleSocket != null) args.AddRange(["--console-socket", consoleSocket]);
        args.Add(id);
        return args;
    }

    public List<string> Start(string logFile, string id) => [.. Global(logFile), "start", id];

    public List<string> Exec(string logFile, string id, string processFile, string pidFile, string? consoleSocket)
    {
        var args = Global(logFile);
        args.AddRange(["exec", "--detach", "--process", processFile, "--pid-file", pidFile]);
        if (consoleSocket != null) args.AddRange(["--tty", "--console-socket", consoleSocket]);
        args.Add(id);
        return args;
    }

    public List<string> Kill(string logFile, string id, int signal, bool all)
    {
        var args = Global(logFile);
        args.Add("kill");
        if (all) args.Add("--all");
        args.AddRange([id, signal.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        return args;
    }

    public List<string> Pause(string logFile, string id) => [.. Global(logFile), "pause", id];

    public List<string> Resume(string logFile, string id) => [.. Global(logFile), "resume", id];

    public List<string> Update(string logFile, string id, string resourcesFile) => [.. Global(logFile), "update", "--resources", resourcesFile, id];

    public List<string> Delete(string logFile, string id, bool force) =>
        force ? [.. Global(logFile), "delete", "--force", id] : [.. Global(logFile), "delete", id];

    public List<string> ListPids(string logFile, string id) => [.. Global(logFile), "ps", "--format", "json", id];
}
