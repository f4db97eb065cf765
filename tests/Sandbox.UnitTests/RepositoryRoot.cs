namespace Sandbox.UnitTests;

/// <summary>The checkout these tests were built from: the directory above the test binaries that holds Sandbox.sln.</summary>
internal static class RepositoryRoot
{
    public static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Sandbox.sln")))
                return dir.FullName;
        }
        throw new DirectoryNotFoundException("the repository root (Sandbox.sln) is not above " + AppContext.BaseDirectory);
    }
}
